"""A griffe extension for the API reference (mkdocs.yml): mount the folders that install as
``nas.*`` subpackages (pyproject's ``package-dir``: ``predictors/`` is ``nas.predictors``,
and so on), so that static analysis sees the package as it is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[1]
MOUNTED = ("predictors", "searches", "zoo")


class InstalledLayout(griffe.Extension):
    """Load ``predictors/``, ``searches/`` and ``zoo/`` as members of ``nas``."""

    def on_package(
        self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any
    ) -> None:
        if pkg.name != "nas":
            return
        for name in MOUNTED:
            if name not in pkg.members:
                sub = loader.load(ROOT / name, submodules=True)
                pkg.set_member(name, sub)
