"""Where something was written in a DSL file: a leaf module, so every part of the DSL can
name positions without importing the grammar."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pos"]


@dataclass(frozen=True)
class Pos:
    """Where something was written: file, line and column (1-based)."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"
