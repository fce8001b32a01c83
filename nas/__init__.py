"""nas: neural architecture search over grammar-defined spaces.

The public entry points are re-exported lazily so that ``import nas`` stays cheap
(torch is only imported when a model is compiled).
"""

from __future__ import annotations

from nas._version import __version__

__all__ = ["Search", "SearchConfig", "SearchResult", "__version__", "search"]


def __getattr__(name: str):
    """``nas.search``, ``nas.Search`` and ``nas.SearchConfig``, imported on first use."""
    if name in ("search", "Search", "SearchConfig", "SearchResult"):
        from nas import searches

        return getattr(searches, name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
