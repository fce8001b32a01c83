"""The op registry: every name that may appear in a grammar or an architecture string.

An op is one decorated class. Leaf ops (terminals) map one signal to another; combinators
(``seq``, ``branch``, ...) additionally wire child modules together. Both declare a shape
rule (``infer``), a torch builder (``build``) and a parameter count, so sampling and
checking never need torch and never run dummy forward passes.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nas.exceptions import ConfigurationError, ShapeError, UnknownNameError
from nas.ops.spec import Signal, Spec
from nas.registry import Registry

if TYPE_CHECKING:
    from torch import nn

ParamValue = int | float | str
# Integer parameters outside +-INT_LIMIT are rejected unless an op declares its own domain.
INT_LIMIT = 2**31 - 1

__all__ = [
    "Combinator",
    "Op",
    "create_op",
    "get_op",
    "is_op",
    "list_ops",
    "load_op_module",
    "op_module_folders",
    "register_op",
    "suggest_ops",
]

# Built-in ops register when nas.ops is imported (its __init__); user packages through
# the ``nas.ops`` entry-point group or an ``import "module"`` line in a grammar.
OPS: Registry[type[Op]] = Registry("op", entry_points="nas.ops")


class Op:
    """A terminal op: a shape rule, a torch builder and a parameter count.

    Subclasses set ``name`` and ``params`` (an ordered mapping of parameter name to its
    type, optionally ``(type, default)``) and override ``infer`` and ``build``.
    Instances are immutable and hashable by ``(name, params)``.

    Example:
        >>> op = create_op("linear", out=64)
        >>> op.infer((Spec((3, 28, 28)),))
        (Spec(shape=(3, 28, 64), mode='im', fold=None),)
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    is_combinator: ClassVar[bool] = False
    # True for ops that allocate no new activation memory (identity, views).
    is_view: ClassVar[bool] = False
    # Inclusive (low, high) bounds of numeric parameters, checked when the op is created.
    domains: ClassVar[dict[str, tuple[float, float]]] = {}

    def __init__(self, **kwargs: ParamValue) -> None:
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise ShapeError(
                f"op {self.name!r} has no parameter {unknown[0]!r}; "
                f"its parameters are: {', '.join(self.params) or 'none'}."
            )
        values: dict[str, ParamValue] = {}
        for pname, decl in self.params.items():
            ptype, default = decl if isinstance(decl, tuple) else (decl, None)
            if pname in kwargs:
                raw = kwargs.pop(pname)
                try:
                    if ptype is int and isinstance(raw, float | bool):
                        raise ValueError  # 64.5 must not silently become 64
                    values[pname] = ptype(raw)
                except (TypeError, ValueError):
                    raise ShapeError(
                        f"parameter {pname!r} of op {self.name!r} must be {ptype.__name__}, "
                        f"but got {raw!r}."
                    ) from None
            elif default is not None:
                values[pname] = default
            else:
                raise ShapeError(f"op {self.name!r} needs parameter {pname!r}.")
        self.values: tuple[tuple[str, ParamValue], ...] = tuple(values.items())
        for k, v in values.items():
            setattr(self, k, v)
        self.check_domains()

    def check_domains(self) -> None:
        """Reject parameter values outside the op's domain (negative strides, absurd ints).

        Raises:
            ShapeError: a value is out of its declared range, not finite, or not a valid
                value for the op (subclasses may check more, calling ``super()``).
        """
        for k, v in self.values:
            if isinstance(v, str):
                continue
            lo, hi = self.domains.get(k, (-INT_LIMIT, INT_LIMIT))
            if not lo <= v <= hi:  # NaN fails this too
                got = repr(v)
                got = got if len(got) <= 24 else f"{got[:20]}... ({len(got)} chars)"
                raise ShapeError(
                    f"parameter {k!r} of op {self.name!r} must be between {lo} and {hi}, "
                    f"but got {got}."
                )

    # -- shape rule -------------------------------------------------------------------------
    def infer(self, x: Signal) -> Signal:
        """Return the output signal for input ``x``, or raise ShapeError with the reason."""
        raise NotImplementedError

    def num_params(self, x: Signal) -> int:
        """Trainable parameters this op creates for input ``x`` (excluding children)."""
        return 0

    def activation(self, x: Signal, y: Signal) -> int:
        """Activation elements per sample this op allocates (its outputs unless a view)."""
        return 0 if self.is_view else sum(s.numel for s in y)

    def flops(self, x: Signal, y: Signal) -> int:
        """Multiply-accumulates per sample (elementwise ops: one per output element)."""
        return 0 if self.is_view else sum(s.numel for s in y)

    def build(self, x: Signal) -> nn.Module:
        """The torch module computing this op for input ``x``."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def single(x: Signal, name: str = "") -> Spec:
        """The one tensor of ``x``; ShapeError if ``x`` holds several (unaggregated) branches."""
        if len(x) != 1:
            raise ShapeError(f"{name or 'op'} needs one tensor but gets {len(x)} branches.")
        return x[0]

    def __repr__(self) -> str:
        return format_call(self.name, self.values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and (self.name, self.values) == (other.name, other.values)

    def __hash__(self) -> int:
        return hash((self.name, self.values))


ChildInfer = Callable[..., Signal]
ChildBuild = Callable[..., "tuple[nn.Module, Signal]"]


class Combinator(Op):
    """An op with child modules in numbered slots.

    ``n_slots`` slots are written in order; the slot ``repeat_slot`` (if any) holds one
    child per copy the combinator asks for, or a single child shared by all copies (its
    architecture, not its weights). ``independent_upto`` tells the sampler when copies
    are drawn independently (k <= independent_upto) or drawn once and repeated.

    Subclasses implement ``flow(x, child)``, calling ``child(slot, signal, copy, copies)``
    for each child application (optionally ``reserve=N``: activation elements the
    sampler should keep for the slots after this one), and ``build_with(x, child)``
    where ``child`` also returns the built module. The same ``flow`` drives checking,
    sampling and statistics.
    """

    is_combinator: ClassVar[bool] = True
    is_view: ClassVar[bool] = True
    n_slots: ClassVar[int] = 1
    repeat_slot: ClassVar[int | None] = None
    independent_upto: ClassVar[int] = 1

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        """Propagate ``x`` through the children (via ``child``) and return the output."""
        raise NotImplementedError

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        """Build the torch module, obtaining child modules from ``child``."""
        raise NotImplementedError

    def slot_of(self, n_written: int, slot: int, copy: int) -> int:
        """Index among the written children of ``(slot, copy)``.

        Raises:
            ShapeError: the number of written children does not fit this combinator.
        """
        r = self.repeat_slot
        if r is None:
            if n_written != self.n_slots:
                raise ShapeError(
                    f"{self.name} takes {self.n_slots} children but {n_written} were given."
                )
            return slot
        m = n_written - (self.n_slots - 1)
        if m < 1:
            raise ShapeError(
                f"{self.name} takes at least {self.n_slots} children but {n_written} were given."
            )
        if slot < r:
            return slot
        if slot > r:
            return slot + m - 1
        if m == 1:
            return r
        if copy >= m:
            raise ShapeError(
                f"{self.name} applies its repeated child {copy + 1} times but only {m} "
                f"different children were written; write one (shared) or all of them."
            )
        return r + copy

    def child_slot(self, n_written: int, i: int) -> int:
        """The slot of the ``i``-th written child (inverse of ``slot_of``)."""
        r = self.repeat_slot
        if r is None or i < r:
            return i
        m = n_written - (self.n_slots - 1)
        return r if i < r + m else i - m + 1


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to the registry under ``cls.name``.

    Raises:
        DuplicateNameError: another op already has the name.
    """
    if not cls.name or not re.fullmatch(r"[a-z_][a-z0-9_]*", cls.name):
        raise ValueError(f"op names must be lowercase identifiers, got {cls.name!r}")
    return OPS.add(cls.name, cls)


def is_op(name: str) -> bool:
    """Whether ``name`` is a registered op."""
    return name in OPS


def list_ops(pattern: str = "*") -> list[str]:
    """Registered op names matching an fnmatch ``pattern``, sorted."""
    return sorted(OPS.names(pattern))


def suggest_ops(name: str, n: int = 3) -> list[str]:
    """The registered op names closest to ``name`` (for 'did you mean' messages)."""
    return difflib.get_close_matches(name, OPS.names(), n=n, cutoff=0.5)


def get_op(name: str) -> type[Op]:
    """The op class registered as ``name``.

    Raises:
        UnknownNameError: no such op; the message lists the closest names.
    """
    if name in OPS:
        return OPS.get(name)
    close = suggest_ops(name)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown op {name!r}.{hint}")


def op_module_folders(near: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Where an op module is looked for before ``sys.path``: ``near`` (a grammar's folder),
    then the current folder; absolute and existing, each once (so no PYTHONPATH is needed)."""
    found: list[Path] = []
    for folder in (*near, Path.cwd()):
        path = Path(folder).resolve()
        if path.is_dir() and path not in found:
            found.append(path)
    return found


# One op module import at a time: each puts its folders on sys.path only while it runs.
_IMPORT_LOCK = threading.RLock()


def load_op_module(module: str, near: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Import a user's module of ops (``import "mypkg.ops"`` in a grammar) so they register.

    The module is looked for in ``near`` (the grammar's folder), then the current folder,
    then ``sys.path``; those folders are on ``sys.path`` only while the module is imported.

    Raises:
        ConfigurationError: the module cannot be imported; the message says why (for a
            module not found: the folders it was looked for in).
    """
    folders = [str(f) for f in op_module_folders(near)]
    with _IMPORT_LOCK:
        sys.path[:0] = folders
        try:  # what the module prints goes to stderr: stdout is the commands' (JSON lines)
            importlib.invalidate_caches()  # a module written a moment ago is found
            with contextlib.redirect_stdout(sys.stderr):
                importlib.import_module(module)
        except ConfigurationError:
            raise
        except ModuleNotFoundError as e:
            if e.name is None or not f"{module}.".startswith(f"{e.name}."):
                raise _import_error(module, e) from None  # the module's own import failed
            raise ConfigurationError(
                f"cannot import op module {module!r}: no module {e.name!r} in "
                f"{', '.join(folders)} or on sys.path (PYTHONPATH adds a folder)."
            ) from None
        except Exception as e:  # the user's module: its own error, in one line
            raise _import_error(module, e) from None
        finally:
            for folder in folders:
                with contextlib.suppress(ValueError):
                    sys.path.remove(folder)


def _import_error(module: str, e: Exception) -> ConfigurationError:
    """The one-line error for a user's op module that raised ``e`` while imported."""
    return ConfigurationError(f"cannot import op module {module!r}: {type(e).__name__}: {e}")


_INSTANCES: dict[tuple[type[Op], tuple[tuple[str, ParamValue], ...]], Op] = {}


def cached_instance(cls: type[Op], params: dict[str, ParamValue]) -> Op:
    """The (immutable, shared) instance of ``cls`` with ``params``: one cache for every
    node class, ops and the DSL's config nodes alike."""
    key = (cls, tuple(sorted(params.items())))
    op = _INSTANCES.get(key)
    if op is None:
        op = _INSTANCES[key] = cls(**params)
    return op


def create_op(name: str, **params: ParamValue) -> Op:
    """An (immutable, cached) instance of op ``name`` with ``params``."""
    return cached_instance(get_op(name), params)


def format_value(v: ParamValue) -> str:
    """Canonical text of a parameter value."""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def format_call(name: str, values: tuple[tuple[str, ParamValue], ...]) -> str:
    """Canonical text of an op with its parameters, e.g. ``linear(out=64)``."""
    if not values:
        return name
    return f"{name}({','.join(f'{k}={format_value(v)}' for k, v in values)})"
