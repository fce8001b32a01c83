"""docs/architecture.md stays true: it names every source module and every error a user
can meet (each ``NasError`` subclass the code defines, with the file that defines it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
FOLDERS = ("nas", "searches", "predictors", "zoo")


def _sources() -> list[Path]:
    return sorted(f for d in FOLDERS for f in (ROOT / d).rglob("*.py"))


def _error_classes() -> dict[str, Path]:
    """Class name -> file, for every exception class deriving (by name) from a NasError."""
    bases: dict[str, tuple[list[str], Path]] = {}
    for f in _sources():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef):
                names = [
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                ]
                bases[node.name] = (names, f)

    def is_nas(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == "NasError":
            return True
        if name not in bases or name in seen:
            return False
        return any(is_nas(b, seen | {name}) for b in bases[name][0])

    return {n: f for n, (_, f) in bases.items() if n != "NasError" and is_nas(n)}


def _mentioned(module: Path) -> bool:
    rel = module.relative_to(ROOT)
    if module.name == "__init__.py":
        return True  # a package is named by its folder's row
    # Named by its path, or by its file name in its folder's row (``api.py`` under searches/).
    return str(rel) in DOC or re.search(rf"`{re.escape(module.name)}`", DOC) is not None


def test_every_error_is_in_the_table() -> None:
    table = DOC.split("## Errors", 1)[1].split("\n## ", 1)[0]
    missing = [n for n in _error_classes() if f"`{n}`" not in table]
    assert missing == [], f"errors missing from docs/architecture.md's table: {missing}"


@pytest.mark.parametrize("module", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_is_named(module: Path) -> None:
    assert _mentioned(module), (
        f"{module.relative_to(ROOT)} is named nowhere in docs/architecture.md"
    )
