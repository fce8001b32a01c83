"""nas: neural architecture search over grammar-defined spaces.

The public entry points are re-exported lazily so that ``import nas`` stays cheap
(torch is only imported when a model is compiled).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
