"""Runnable blocks of the Markdown docs (README.md, docs/**/*.md): find them and run them.

Convention: an HTML comment just before a fenced block, on its own line with one blank line
between them (invisible once rendered, and the fence keeps its plain language), says what
to do with the block:

* ``<!-- runnable: write PATH -->``: the block is the whole content of file PATH, relative
  to the working folder;
* ``<!-- runnable: run -->``: the block is a bash script run in the working folder, with
  this environment's ``nas`` and ``python`` first on PATH and no PYTHONPATH; it must exit 0;
* ``<!-- runnable: output -->``: the exact stdout of the run block before it (trailing
  spaces and blank lines aside).

A page's blocks run in page order, in one fresh folder. Blocks without a marker are prose.
Budgets in runnable blocks are kept small: the test suite runs every one of them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable:"
KINDS = {"write", "run", "output"}
BLOCK = re.compile(
    r"^<!-- runnable: (?P<kind>\w+)(?: (?P<arg>\S+))? -->\n\n?"
    r"(?P<fence>`{3,})[^\n]*\n(?P<body>.*?)\n(?P=fence)$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    """One runnable block: what to do (write, run, output), its file, text and line."""

    kind: str
    arg: str | None
    body: str
    line: int


def runnable_blocks(text: str) -> list[Block]:
    """The marked blocks of a Markdown page, in order (see the module docstring)."""
    return [
        Block(m["kind"], m["arg"], m["body"] + "\n", text.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(text)
    ]


def pages() -> list[Path]:
    """Every documentation page: README.md and docs/**/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def marked_pages() -> list[Path]:
    """The pages with at least one runnable marker."""
    return [p for p in pages() if MARKER in p.read_text()]


def check_markers(page: Path) -> list[Block]:
    """A page's blocks, after checking that every marker names a block, outputs follow runs
    and only ``write`` takes a path."""
    text = page.read_text()
    name = page.relative_to(ROOT)
    blocks = runnable_blocks(text)
    unattached = f"{name}: a runnable marker is not just before a fence"
    assert len(blocks) == text.count(MARKER), unattached
    for before, block in zip([None, *blocks], blocks, strict=False):
        assert block.kind in KINDS, f"{name}:{block.line}: unknown kind {block.kind!r}"
        if block.kind == "output":
            assert before is not None and before.kind == "run", f"{name}:{block.line}"
        assert (block.kind == "write") == (block.arg is not None), f"{name}:{block.line}"
    return blocks


def reader_env() -> dict[str, str]:
    """The environment a reader has: this venv's commands, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def run_page(page: Path, folder: Path, timeout: float = 300) -> None:
    """Run a page's blocks in order in ``folder``; fail with the page, line and output."""
    name = page.relative_to(ROOT)
    last: subprocess.CompletedProcess[str] | None = None
    for block in check_markers(page):
        where = f"{name}:{block.line}"
        if block.kind == "write":
            path = folder / str(block.arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.body)
        elif block.kind == "run":
            last = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.body],
                cwd=folder,
                env=reader_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            assert last.returncode == 0, f"{where}: {block.body}\n{last.stdout}\n{last.stderr}"
        else:
            assert last is not None
            assert _lines(last.stdout) == _lines(block.body), f"{where}: the output changed"
