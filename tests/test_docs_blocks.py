"""Every runnable block of README.md and docs/**/*.md runs as written (see ``docs_blocks``).

Each page's blocks run in page order in one fresh folder; the op guide's are run by
tests/test_docs_ops_guide.py, which also checks what that guide must show.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_blocks import ROOT, check_markers, marked_pages, pages, run_page

OPS_GUIDE = ROOT / "docs" / "guide" / "ops.md"
PAGES = [p for p in marked_pages() if p != OPS_GUIDE]


def test_every_marker_names_a_block() -> None:
    """On every page, each marker is just before a fence, outputs follow runs."""
    for page in pages():
        check_markers(page)


def test_the_readme_tour_is_runnable() -> None:
    """The README's quick tour marks a search, the report, export, rank, the API and an op."""
    blocks = check_markers(ROOT / "README.md")
    runs = " ".join(b.body for b in blocks if b.kind == "run")
    for command in ("nas search ", "nas runs show", "nas export", "nas rank", "check_op("):
        assert command in runs, command
    written = {b.arg for b in blocks if b.kind == "write"}
    assert {"api.py", "myops/ops.py", "my.pcfg", "export_mine.py"} <= written, written


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_runnable_blocks_run_as_written(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)
