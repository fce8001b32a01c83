"""How close an exported ONNX file must be to torch: the parity tolerances of the library,
one place for ``nas export``, ``nas zoo export`` and a search's final export (imports
nothing, so the CLI can name them in its help without loading torch)."""

from __future__ import annotations

__all__ = ["TOLERANCE", "ZOO_TOLERANCE"]

#: A grammar space's network: max |torch - onnxruntime| relative to the outputs' scale,
#: absolute for outputs below 1 (:class:`nas.export.Parity`).
TOLERANCE = 1e-4
#: A zoo family's model: max |torch - onnxruntime| itself (its outputs are of order one).
ZOO_TOLERANCE = 1e-3
