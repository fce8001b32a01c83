"""SearchSpace: a grammar plus its input specification and budgets.

Spaces are described by ``spaces/<name>.toml`` (shipped as package data) or by a user's
own ``.toml`` or ``.pcfg`` file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nas.dsl import Grammar, Node, load_grammar, parse_arch
from nas.dsl.files import read_text
from nas.exceptions import BudgetError, ConfigurationError, NasError, UnknownNameError
from nas.ops.spec import Signal, Spec, head_params
from nas.registry import Registry, close_names, unknown_name

# The task head is outside the budgets (the sampler cannot see it), but it must be buildable.
MAX_HEAD_PARAMS = 100_000_000


@dataclass(frozen=True)
class Budget:
    """Limits every sampled architecture must respect (per sample, batch excluded).

    Attributes:
        max_depth: module nesting depth.
        max_params: trainable parameters of the backbone (the task head excluded).
        max_activation: activation elements allocated by one forward pass, per sample.
        max_ops: op applications (a repeated branch counts once per copy).
        max_flops: multiply-accumulates of one forward pass, per sample.
    """

    max_depth: int = 40
    max_params: int = 25_000_000
    max_activation: int = 5_000_000
    max_ops: int = 256
    max_flops: int = 2_000_000_000

    def check(self, depth: int, params: int, activation: int, ops: int, flops: int = 0) -> None:
        """Raise BudgetError naming the first budget exceeded."""
        for name, value in (
            ("max_depth", depth),
            ("max_params", params),
            ("max_activation", activation),
            ("max_ops", ops),
            ("max_flops", flops),
        ):
            limit = getattr(self, name)
            if value > limit:
                what = name.removeprefix("max_")
                raise BudgetError(
                    f"the architecture's {what} is {value:,}, over the budget {name}={limit:,}."
                )

    def override(self, **kw: int | None) -> Budget:
        """A copy with the given (non-None) limits replaced."""
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})


@dataclass
class SearchSpace:
    """A grammar with the input it is applied to and the budgets of its samples."""

    name: str
    grammar: Grammar
    input_shape: tuple[int, ...]
    mode: str = "im"
    num_classes: int = 10
    budget: Budget = field(default_factory=Budget)
    seeds: dict[str, Node] = field(default_factory=dict)
    description: str = ""
    # Other string forms this space's architectures print as (e.g. "nb201"): nas.formats.
    formats: tuple[str, ...] = ()
    # The space's own default training protocol for trained searches (keys of PROTOCOL_KEYS),
    # over the CPU protocol: a space of heavy networks needs fewer epochs and longer trials.
    protocol: dict[str, float] = field(default_factory=dict)

    @property
    def input(self) -> Signal:
        """The input signal (one tensor)."""
        return (Spec(tuple(self.input_shape), self.mode),)

    def with_input(
        self, shape: tuple[int, ...] | None = None, num_classes: int | None = None
    ) -> SearchSpace:
        """A copy applied to another input shape and/or number of classes.

        Raises:
            ConfigurationError: the shape's rank does not fit the space's input mode.
        """
        want = {"im": 3, "col": 2}.get(self.mode)
        if shape and want is not None and len(shape) != want:
            raise ConfigurationError(
                f"space {self.name!r} takes {want}-d inputs ({self.mode} mode), "
                f"but the input shape {'x'.join(map(str, shape))} has {len(shape)} dims."
            )
        return dataclasses.replace(
            self,
            input_shape=tuple(shape) if shape else self.input_shape,
            num_classes=num_classes if num_classes is not None else self.num_classes,
        )

    def check(self, arch: Node, strict: bool = False):
        """Analyse ``arch`` on this space's input and enforce the budgets.

        Raises:
            ShapeError, BudgetError: the architecture is invalid here.
            NotDerivableError: ``strict`` and the grammar cannot derive ``arch``.
        """
        from nas.analysis import analyse
        from nas.dsl.derive import derive

        n_in = sum(s.numel for s in self.input)
        if n_in > self.budget.max_activation:  # the input is an activation too
            raise BudgetError(
                f"the input has {n_in:,} elements per sample, over the budget "
                f"max_activation={self.budget.max_activation:,}."
            )
        a = analyse(arch, self.input, record=True, budget=self.budget)
        if len(a.out) != 1:
            raise BudgetError(
                "the network ends with unmerged branches; it must return one tensor."
            )
        self.budget.check(a.depth, a.params, a.activation, a.n_ops, a.flops)
        head = head_params(a.out[0], self.num_classes)
        if head > MAX_HEAD_PARAMS:  # the budgets cover the backbone; the head is built too
            raise BudgetError(
                f"the classification head would have {head:,} parameters (features x "
                f"classes); at most {MAX_HEAD_PARAMS:,} can be built."
            )
        if strict:
            derive(self.grammar, arch)
            _check_repeats(a)
        return a


def _check_repeats(a) -> None:
    """Strict mode: repeated children are written as the sampler writes them.

    A combinator applying its repeated slot k times writes k independent children when
    k <= independent_upto and one shared child otherwise (einspace: k = 2 vs 4, 8).
    """
    from nas.analysis import describe_path
    from nas.dsl.derive import NotDerivableError
    from nas.dsl.vocab import create_node

    root = a.nodes[()].node
    for path, info in a.nodes.items():
        op = create_node(info.node.op, **dict(info.node.params))
        if not op.is_combinator or op.repeat_slot is None:
            continue
        written = len(info.node.children) - (op.n_slots - 1)
        want = info.copies if info.copies <= op.independent_upto else 1
        if written != want:
            raise NotDerivableError(
                f"not derivable: at {describe_path(root, path)}, {op.name} applies its repeated "
                f"child {info.copies} times, so the grammar writes {want} of them, not {written}."
            )


def _space_file(name: str) -> tuple[str, str]:
    """(file name, text) of a built-in space or a user's .toml."""
    p = Path(name)
    if p.suffix == ".toml":
        return str(p), read_text(p)  # regular files only, bounded, UTF-8
    res = resources.files("nas.spaces").joinpath(f"{name}.toml")
    if not res.is_file():
        also = ", or a .toml or .pcfg file"
        raise UnknownNameError(unknown_name("space", name, space_names(), also))
    return f"spaces/{name}.toml", res.read_text()


def list_spaces() -> list[str]:
    """Names of the built-in spaces."""
    root = resources.files("nas.spaces")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def space_names() -> list[str]:
    """Every space name a command takes (built-in, ``zoo:FAMILY``, ``SCHEME:NAME``), for the
    unknown-space error and its "did you mean"."""
    names = list_spaces()
    for scheme in SPACE_SCHEMES.names():
        if scheme == "zoo":  # a scheme of a known set of names: each of them
            from nas.zoo._registry import list_families

            names += [f"zoo:{f}" for f in list_families()]
        else:
            names.append(f"{scheme}:NAME")
    return names


def _grammar_path(ref: str, fname: str, folder: Path | None) -> tuple[str, str | None]:
    """(path, text or None to read it) of a space file's grammar: a .pcfg beside a user's
    space file, else a built-in one; anything else is refused, naming it and the space."""
    if Path(ref).suffix != ".pcfg":
        raise ConfigurationError(f"{fname}: grammar {ref!r} is not a .pcfg grammar file.")
    if folder is not None and os.path.lexists(folder / ref):  # its errors name the file
        return str(folder / ref), None
    res = resources.files("nas.grammars").joinpath(ref)
    if not Path(ref).is_absolute() and ".." not in Path(ref).parts and res.is_file():
        return f"grammars/{ref}", read_text(str(res))
    beside = f"no {folder / ref} and " if folder is not None else ""
    raise ConfigurationError(
        f"{fname}: grammar {ref!r} not found: {beside}no built-in grammar of that name."
    )


#: ``SCHEME:NAME`` spaces: scheme -> function of the whole name returning the space. A new
#: scheme registers itself here; built-in ones are imported only when used.
SPACE_SCHEMES: Registry[Callable[[str], SearchSpace]] = Registry("space scheme")
SPACE_SCHEMES.add_lazy("zoo", "nas.zoo._space:zoo_space")


def _pcfg_space(name: str) -> SearchSpace:
    """A bare grammar file: applied to the default input, 3x32x32 images."""
    return SearchSpace(Path(name).stem, load_grammar(name), DEFAULT_INPUT)


#: File suffix -> loader of a user's space file.
SPACE_FILES: dict[str, Callable[[str], SearchSpace]] = {".pcfg": _pcfg_space}


def _field(cfg: dict, key: str, kind: type, fname: str, default=None):
    """``cfg[key]`` checked to be of ``kind`` (str, list, dict: a TOML file can hold anything)."""
    value = cfg.get(key, default)
    if not isinstance(value, kind):
        raise ConfigurationError(
            f"{fname}: field {key!r} must be a {kind.__name__}, got {value!r}."
        )
    return value


#: The top-level fields and tables of a space file; any other key is a typo, refused.
SPACE_FILE_KEYS = ("name", "grammar", "description", "formats", "input", "budget", "seeds",
                   "protocol")  # fmt: skip


def _known_keys(cfg: dict, known: tuple[str, ...], what: str, fname: str) -> None:
    """Refuse a key outside ``known`` (a misspelt budget or input would be silently unused)."""
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        close = close_names(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(
            f"{fname}: unknown {what} {unknown[0]!r}{hint}; choose from {', '.join(known)}."
        )


def _positive_int(value: object, what: str, fname: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{fname}: {what} must be a positive integer, got {value!r}.")
    return value


def space_scheme(name: str) -> str | None:
    """The registered scheme of a ``SCHEME:NAME`` space (``"zoo"`` for ``zoo:moe``), else None.

    What a command is given (an architecture, or a space such as a zoo family) is told by
    this registry, not by testing prefixes.
    """
    scheme, sep, _ = str(name).partition(":")
    return scheme if sep and scheme in SPACE_SCHEMES else None


def load_space(name: str) -> SearchSpace:
    """A built-in space (``einspace``, ``nb201``), ``SCHEME:NAME`` (``zoo:FAMILY``), or a
    user's ``.toml`` or ``.pcfg`` file.

    Raises:
        UnknownNameError, ConfigurationError, GrammarError: with a one-line reason.
    """
    scheme = space_scheme(name)
    if scheme is not None:
        return SPACE_SCHEMES.get(scheme)(name)
    loader = SPACE_FILES.get(Path(name).suffix)
    if loader is not None:
        return loader(name)
    return _toml_space(name)


#: The one name for resolving any space reference (``resolve_space``, ``resolve_dataset``
#: and ``resolve_arch`` read the same way).
resolve_space = load_space

#: The input a space applies to when its file does not say.
DEFAULT_INPUT: tuple[int, ...] = (3, 32, 32)


def _toml_space(name: str) -> SearchSpace:
    """A built-in space or a user's ``.toml``: grammar, input, budgets and seeds."""
    fname, text = _space_file(name)
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{fname}: {e}") from None
    if "grammar" not in cfg:
        raise ConfigurationError(f"{fname}: missing field 'grammar'.")
    _known_keys(cfg, SPACE_FILE_KEYS, "field", fname)
    folder = Path(name).parent if Path(name).suffix == ".toml" else None  # a user's file
    gpath, gtext = _grammar_path(_field(cfg, "grammar", str, fname), fname, folder)
    grammar = load_grammar(gpath, gtext) if gtext is not None else load_grammar(gpath)
    inp = _field(cfg, "input", dict, fname, {})
    _known_keys(inp, ("shape", "mode", "num_classes"), "input key", fname)
    shape = _field(inp, "shape", list, fname, list(DEFAULT_INPUT))
    shape = tuple(_positive_int(d, "input.shape entries", fname) for d in shape)
    mode = _field(inp, "mode", str, fname, "im")
    if {"im": 3, "col": 2}.get(mode) != len(shape):
        raise ConfigurationError(
            f"{fname}: input mode must be 'im' (shape C,H,W) or 'col' (tokens, features), "
            f"got mode {mode!r} with shape {list(shape)}."
        )
    num_classes = _positive_int(inp.get("num_classes", 10), "input.num_classes", fname)
    limits = _field(cfg, "budget", dict, fname, {})
    unknown = sorted(set(limits) - {f.name for f in dataclasses.fields(Budget)})
    if unknown:
        raise ConfigurationError(f"{fname}: unknown budget {unknown[0]!r}.")
    budget = Budget(**{k: _positive_int(v, f"budget.{k}", fname) for k, v in limits.items()})
    n_in = math.prod(shape)
    if n_in > budget.max_activation:  # the input is an activation: no network could fit
        raise ConfigurationError(
            f"{fname}: input.shape {list(shape)} has {n_in:,} elements per sample, over "
            f"budget.max_activation={budget.max_activation:,}; lower the shape or raise it."
        )
    seeds: dict[str, Node] = {}
    seed_dir = _field(cfg, "seeds", str, fname, "")
    if seed_dir:
        root = resources.files("nas.spaces").joinpath(seed_dir)
        if Path(seed_dir).is_absolute() or ".." in Path(seed_dir).parts or not root.is_dir():
            raise ConfigurationError(f"{fname}: no built-in seed folder {seed_dir!r}.")
        for f in sorted(root.iterdir(), key=lambda f: f.name):
            if f.name.endswith(".arch"):
                try:
                    seeds[f.name[:-5]] = parse_arch(f.read_text().strip())
                except NasError as e:
                    raise ConfigurationError(f"seed {f.name}: {e}") from None
    formats = _field(cfg, "formats", list, fname, [])
    protocol = _protocol(_field(cfg, "protocol", dict, fname, {}), fname)
    return SearchSpace(
        name=str(_field(cfg, "name", str, fname, Path(fname).stem)),
        grammar=grammar,
        input_shape=shape,
        mode=mode,
        num_classes=num_classes,
        budget=budget,
        seeds=seeds,
        description=str(_field(cfg, "description", str, fname, "")),
        formats=tuple(str(f) for f in formats),
        protocol=protocol,
    )


#: ``[protocol]`` keys of a space file -> (least value, whether it is a whole number)
PROTOCOL_KEYS = {
    "trials": (1, True),
    "epochs": (1, True),
    "final_epochs": (0, True),
    "trial_time": (1e-9, False),
    "time_budget": (1e-9, False),
}


def _protocol(table: dict, fname: str) -> dict[str, float]:
    """A space file's ``[protocol]``: trials, epochs, final_epochs, trial_time (CPU seconds
    per trial) and time_budget (wall seconds of the search, ``inf`` for none), each checked."""
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in PROTOCOL_KEYS:
            raise ConfigurationError(
                f"{fname}: unknown protocol key {key!r}; choose from {', '.join(PROTOCOL_KEYS)}."
            )
        least, whole = PROTOCOL_KEYS[key]
        ok = isinstance(value, int) if whole else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value != value or value < least:
            kind = "a whole number" if whole else "a positive number of seconds (or inf)"
            raise ConfigurationError(
                f"{fname}: protocol.{key} must be {kind} >= {least:g}, got {value!r}."
            )
        out[key] = int(value) if whole else float(value)
    return out
