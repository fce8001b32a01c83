"""The op guide (docs/guide/ops.md) runs as written, so it cannot drift from the code.

Convention for runnable blocks: an HTML comment just before a fenced block, on its own line
with one blank line between them (invisible once rendered, and the fence keeps its plain
language), says what to do with the block:

* ``<!-- runnable: write PATH -->``: the block is the whole content of file PATH, relative
  to the working folder;
* ``<!-- runnable: run -->``: the block is a bash script run in the working folder, with
  this environment's ``nas`` and ``python`` first on PATH and no PYTHONPATH; it must exit 0;
* ``<!-- runnable: output -->``: the exact stdout of the run block before it (trailing
  spaces and blank lines aside).

Every block runs in page order, in one fresh folder. Blocks without a marker are prose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "ops.md"
MARKER = "<!-- runnable:"
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


def _env() -> dict[str, str]:
    """The environment a reader has: this venv's commands, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def test_the_op_guide_marks_its_blocks() -> None:
    """Every marker names a block, outputs follow runs, and the guide writes and runs files."""
    text = GUIDE.read_text()
    blocks = runnable_blocks(text)
    assert len(blocks) == text.count(MARKER), "a runnable marker is not just before a fence"
    kinds = [b.kind for b in blocks]
    assert set(kinds) <= {"write", "run", "output"}, kinds
    for before, block in zip([None, *blocks], blocks, strict=False):
        if block.kind == "output":
            assert before is not None and before.kind == "run", f"line {block.line}"
        assert (block.kind == "write") == (block.arg is not None), f"line {block.line}"
    written = {b.arg for b in blocks if b.kind == "write"}
    assert {"myops/ops.py", "cnn.pcfg"} <= written, written
    runs = " ".join(b.body for b in blocks if b.kind == "run")
    assert "nas sample --space cnn.pcfg" in runs and "check_op(" in runs and "--check" in runs


def test_the_op_guide_runs_as_written(tmp_path: Path) -> None:
    """The guide's op registers from beside its grammar, samples, and passes check_op."""
    blocks = runnable_blocks(GUIDE.read_text())
    last: subprocess.CompletedProcess[str] | None = None
    for block in blocks:
        where = f"docs/guide/ops.md:{block.line}"
        if block.kind == "write":
            path = tmp_path / str(block.arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.body)
        elif block.kind == "run":
            last = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.body],
                cwd=tmp_path,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert last.returncode == 0, f"{where}: {block.body}\n{last.stdout}\n{last.stderr}"
        else:
            assert last is not None
            assert _lines(last.stdout) == _lines(block.body), f"{where}: the output changed"
