"""The documentation site (mkdocs.yml, docs/) builds with ``mkdocs build --strict``: every
page is in the nav, every link and cross-reference resolves, and the API reference of the
public modules (mkdocstrings) renders without a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = ("nas", "nas.searches", "nas.predictors", "nas.zoo", "nas.testing")


def test_the_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", site],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (ROOT / "site").exists()
    for module in API:  # one API page per public module, with its documented members
        page = (site / "api" / module / "index.html").read_text()
        assert f'id="{module}"' in page, module
    searches = (site / "api" / "nas.searches" / "index.html").read_text()
    assert 'id="nas.searches.SearchConfig"' in searches
    assert 'id="nas.testing.check_op"' in (site / "api" / "nas.testing" / "index.html").read_text()
    assert (site / "guide" / "ops" / "index.html").exists()
