"""One error hierarchy for the whole package.

Every user mistake raises a subclass of :class:`NasError`; the CLI turns it into a
one-line message and exit code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class NasError(Exception):
    """Root of all errors a user can cause and fix."""


class ConfigurationError(NasError, ValueError):
    """A configuration value (option, TOML field, budget) is invalid."""


class GrammarError(NasError, ValueError):
    """A ``.pcfg`` grammar file is invalid; the message names file:line:col."""

    def __init__(self, message: str, path: str = "<string>", line: int = 0, column: int = 0):
        self.path = path
        self.line = line
        self.column = column
        self.reason = message
        where = f"{path}:{line}:{column}: " if line else f"{path}: "
        super().__init__(where + message)


class ArchSyntaxError(NasError, ValueError):
    """An architecture string does not parse; the message names the column."""


class ShapeError(NasError, ValueError):
    """An op or module cannot be applied to the tensor it receives."""


class BudgetError(NasError, ValueError):
    """An architecture exceeds a budget (depth, parameters, activation memory, size)."""


class UnknownNameError(NasError, KeyError):
    """A name (op, space, strategy, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class SamplingError(NasError, RuntimeError):
    """The sampler found no valid architecture under the given constraints."""


class ExportError(NasError, RuntimeError):
    """ONNX export failed or onnxruntime disagrees with torch beyond tolerance."""


class OnnxFileError(NasError, ValueError):
    """An ONNX file cannot be read: missing, too large, not ONNX, truncated or unsafe."""


class EmbedderError(NasError, RuntimeError):
    """The embedding model or its cache cannot be used."""
