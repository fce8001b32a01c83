"""The op guide (docs/guide/ops.md) runs as written, so it cannot drift from the code.

The runnable-block convention and its runner are in ``docs_blocks`` (shared with
tests/test_docs_blocks.py, which runs every other page's blocks).
"""

from __future__ import annotations

from pathlib import Path

from docs_blocks import ROOT, check_markers, run_page

GUIDE = ROOT / "docs" / "guide" / "ops.md"


def test_the_op_guide_marks_its_blocks() -> None:
    """Every marker names a block, outputs follow runs, and the guide writes and runs files."""
    blocks = check_markers(GUIDE)
    written = {b.arg for b in blocks if b.kind == "write"}
    assert {"myops/ops.py", "cnn.pcfg"} <= written, written
    runs = " ".join(b.body for b in blocks if b.kind == "run")
    assert "nas sample --space cnn.pcfg" in runs and "check_op(" in runs and "--check" in runs


def test_the_op_guide_runs_as_written(tmp_path: Path) -> None:
    """The guide's op registers from beside its grammar, samples, and passes check_op."""
    run_page(GUIDE, tmp_path)
