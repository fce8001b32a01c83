"""Contract suites: what every registered op, strategy, zoo family and dataset must do.

Each ``check_*`` function raises ``AssertionError`` naming the broken promise. The test
suite runs them over every registered name (tests/test_contracts.py), so a newcomer's op,
strategy, family or dataset is tested the moment it registers, with no test written:

    >>> from nas.testing import check_op
    >>> check_op("linear", echo=None)  # doctest: +ELLIPSIS
    [('docstring', 'Fully connected layer ...'), ...]

``check_op`` prints each check and its result; a user's op is named with its module
(``check_op("myops.ops:conv")``) or a grammar that imports it (``grammar="my.pcfg"``),
whose draws are then the architectures checked. An op that no grammar given or built in
uses declares ``examples``: architecture strings using it, applied to a 3x28x28 image
(``examples = ("compute(double)",)``). From a shell: ``nas ops conv --check --module
myops.ops``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from nas.exceptions import NasError

__all__ = ["check_dataset", "check_family", "check_op", "check_strategy", "op_examples"]

EXAMPLE_INPUT = (3, 28, 28)
EXAMPLE_CLASSES = 10
# Draws from a user's grammar searched for architectures that use the op being checked.
GRAMMAR_DRAWS = 300


def _fail(what: str, message: str) -> AssertionError:
    return AssertionError(f"{what}: {message}")


@cache
def _drawn(space: str, n: int, seed: int) -> tuple[str, ...]:
    """``n`` architectures drawn from a built-in space (cached: several ops share them)."""
    from nas.sampling import Sampler
    from nas.space import load_space

    sampler = Sampler(load_space(space), seed=seed)
    return tuple(str(sampler.sample()) for _ in range(n))


def _uses(node: Any, name: str) -> bool:
    return node.op == name or any(_uses(c, name) for c in node.children)


def op_examples(name: str, n: int = 2, grammar: str | Path | None = None) -> list[tuple[str, str]]:
    """Up to ``n`` (space, architecture) pairs that use op ``name``: draws from ``grammar``
    (a user's .pcfg or .toml, on its own input), else the op's own ``examples`` (on a
    3x28x28 einspace input), else the built-in spaces' seeds and draws."""
    return _examples(name, n, grammar)[0]


def _examples(name: str, n: int, grammar: str | Path | None) -> tuple[list[tuple[str, str]], str]:
    """``op_examples`` and where they came from (for check_op's report)."""
    from nas.dsl import parse_arch
    from nas.ops import get_op
    from nas.sampling import Sampler
    from nas.space import load_space

    if grammar is not None:
        sampler, found = Sampler(load_space(str(grammar)), seed=0), []
        for _ in range(GRAMMAR_DRAWS):
            text = str(sampler.sample())
            if text not in found and _uses(parse_arch(text), name):
                found.append(text)
                if len(found) >= n:
                    break
        if found:
            return [(str(grammar), t) for t in found], f"draws of {grammar}"
    own = [("einspace", text) for text in getattr(get_op(name), "examples", ())]
    if own:
        return own[:n], "its own examples, on a 3x28x28 image"
    found_in: list[tuple[str, str]] = []
    for space in ("einspace", "nb201"):
        seeds = tuple(str(s) for s in load_space(space).seeds.values())
        for text in seeds + _drawn(space, 300, 0):
            if _uses(parse_arch(text), name):
                found_in.append((space, text))
                if len(found_in) >= n:
                    return found_in, "the built-in spaces' seeds and draws"
    return found_in, "the built-in spaces' seeds and draws"


def _short(text: str, width: int = 60) -> str:
    """An architecture string cut to ``width`` characters for a report line."""
    return text if len(text) <= width else text[: width - 3] + "..."


class _Report:
    """Says each check of one op as it passes (or fails) and keeps the passed ones."""

    def __init__(self, what: str, echo: Callable[[str], object] | None) -> None:
        self.what, self.echo, self.passed = what, echo, []

    def ok(self, check: str, detail: str) -> None:
        self.passed.append((check, detail))
        if self.echo is not None:
            self.echo(f"  ok    {check}: {detail}")

    def fail(self, check: str, message: str) -> AssertionError:
        if self.echo is not None:
            self.echo(f"  FAIL  {check}: {message}")
        return _fail(self.what, message)


def _resolve_op(name: str, module: str | None, grammar: str | Path | None) -> tuple[str, type]:
    """The op name and class, after importing ``MODULE:`` / ``module`` and loading ``grammar``."""
    from nas.exceptions import UnknownNameError
    from nas.ops import get_op, load_op_module
    from nas.space import load_space

    modules = [module] if module else []
    if ":" in name:
        named, name = name.rsplit(":", 1)
        modules.append(named)
    for m in modules:
        load_op_module(m)
    if grammar is not None:
        load_space(str(grammar))  # its import lines register its ops
    try:
        return name, get_op(name)
    except UnknownNameError as e:
        if modules or grammar is not None:
            raise
        raise UnknownNameError(
            f"{e} If it is your own op, name its module or a grammar that imports it: "
            f"check_op('MODULE:{name}') or check_op({name!r}, grammar='FILE.pcfg')."
        ) from None


def check_op(
    name: str,
    module: str | None = None,
    grammar: str | Path | None = None,
    echo: Callable[[str], object] | None = print,
) -> list[tuple[str, str]]:
    """Check that an op keeps its contract, saying each check and its result.

    The checks: it is documented, its parameters are typed int, float or str, and on
    architectures that use it its shape rule holds, its module runs, and the parameters
    its shape rules count are the built module's.

    Args:
        name: a registered op (``"linear"``), or ``"MODULE:NAME"`` (``"myops.ops:conv"``)
            to import the op's module first.
        module: a module to import first, looked for like a grammar's ``import`` (the
            current folder, then sys.path): ``check_op("conv", module="myops.ops")``.
        grammar: a ``.pcfg`` grammar (or ``.toml`` space) file to load first: its
            ``import`` lines register the op, and its draws that use the op are the
            architectures checked (else the op's ``examples``, else the built-in spaces).
        echo: where each check's line goes (``None``: nowhere).

    Returns:
        The checks passed, as (check, detail) pairs.

    Raises:
        AssertionError: a broken promise, naming the op.
        UnknownNameError: no such op (the message says how to name your op's module).
        ConfigurationError, GrammarError: the module or grammar does not load.
    """
    import torch

    from nas.compile import compile_arch, count_params
    from nas.dsl import parse_arch
    from nas.ops.spec import head_params
    from nas.space import load_space

    name, cls = _resolve_op(name, module, grammar)
    what = f"op {name!r}"
    if echo is not None:
        echo(f"{what} ({cls.__module__}.{cls.__qualname__})")
    report = _Report(what, echo)
    doc = (cls.__doc__ or "").strip()
    if not doc:
        raise report.fail("docstring", "has no docstring (nas ops shows its first line).")
    report.ok("docstring", doc.splitlines()[0])
    declared = []
    for pname, decl in cls.params.items():
        ptype, default = decl if isinstance(decl, tuple) else (decl, None)
        if ptype not in (int, float, str):
            raise report.fail(
                "parameters", f"parameter {pname!r} must be int, float or str, not {ptype!r}."
            )
        declared.append(
            f"{pname}: {ptype.__name__}" + ("" if default is None else f" = {default}")
        )
    report.ok("parameters", ", ".join(declared) or "none")
    examples, source = _examples(name, 2, grammar)
    if not examples:
        raise report.fail(
            "examples",
            "no built-in grammar (nor one given) uses it; declare examples = ('arch', ...) "
            "or name a grammar that draws it.",
        )
    report.ok("examples", f"{len(examples)} from {source}")
    for i, (space_name, text) in enumerate(examples, 1):
        sp = load_space(space_name)
        if space_name == "einspace":
            sp = sp.with_input(EXAMPLE_INPUT, EXAMPLE_CLASSES)
        node = parse_arch(text)
        try:
            a = sp.check(node)
        except NasError as e:
            raise report.fail(
                f"shape rule [{i}]", f"its example {text} does not check: {e}"
            ) from None
        shape = "x".join(map(str, sp.input_shape))
        report.ok(f"shape rule [{i}]", f"{_short(text)} on {shape} gives {a.out[0]}")
        torch.manual_seed(0)
        try:
            model = compile_arch(node, sp.input_shape, sp.num_classes, sp.mode).eval()
            with torch.no_grad():
                y = model(torch.randn(2, *sp.input_shape))
        except Exception as e:  # the module disagrees with the shape rule
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            raise report.fail(
                f"module runs [{i}]", f"{text} checks but its module fails: {reason}"
            ) from None
        if tuple(y.shape) != (2, sp.num_classes) or not torch.isfinite(y).all():
            raise report.fail(
                f"module runs [{i}]", f"{text} gives output {tuple(y.shape)}, not (2, classes)."
            )
        report.ok(f"module runs [{i}]", f"output {tuple(y.shape)}, finite")
        want = a.params + head_params(a.out[0], sp.num_classes)
        if count_params(model) != want:
            raise report.fail(
                f"parameter count [{i}]",
                f"in {text} the shape rules count {want:,} parameters but the built "
                f"module has {count_params(model):,}.",
            )
        report.ok(f"parameter count [{i}]", f"{want:,} counted = {want:,} built")
    return report.passed


def _table_values(arch: Any, objectives: tuple[str, ...]) -> dict[str, float]:
    """Deterministic NB201 table values for every objective (params from the cell ops)."""
    from nas.benchmarks import NB201Table

    acc = NB201Table.load().accuracy(arch)
    return {o: acc if o == "accuracy" else float(len(str(arch))) for o in objectives}


def _ask_tell(strategy: Any, n: int, fail_every: int = 0) -> list[str]:
    asked = []
    for i in range(n):
        arch = strategy.ask()
        asked.append(str(arch))
        if fail_every and i % fail_every == fail_every - 1:
            strategy.tell(arch, None, "failed")
        else:
            strategy.tell(arch, _table_values(arch, strategy.objectives))
    return asked


def check_strategy(name: str, options: dict[str, Any] | None = None, n: int = 24) -> None:
    """A strategy asks valid, distinct architectures; the same seed asks the same ones;
    replaying a recorded history continues it exactly; failures never break it; what its
    screen rejects is drawn again; its declared options are its real options."""
    from nas.dsl import parse_arch
    from nas.searches import create_strategy, get_strategy
    from nas.space import load_space

    what = f"strategy {name!r}"
    cls = get_strategy(name)
    space = load_space("nb201")
    declared = cls.declared_options()
    opts = cls.resolve_options(dict(options or {}), n)
    unknown = set(opts) - set(declared)
    if unknown:
        raise _fail(what, f"resolve_options returns undeclared options {sorted(unknown)}.")

    def make(seed: int) -> Any:
        return create_strategy(name, space, seed=seed, **opts)

    first = _ask_tell(make(1), n, fail_every=5)
    if len(set(first)) != n:
        raise _fail(what, f"asked {n - len(set(first))} repeats in {n} asks.")
    for text in first:
        space.check(parse_arch(text), strict=True)
    if _ask_tell(make(1), n, fail_every=5) != first:
        raise _fail(what, "the same seed and results asked other architectures.")
    original = make(2)
    history = _ask_tell(original, n // 2, fail_every=4)
    recorded = [
        (t, None, "failed") if i % 4 == 3 else (t, _table_values(t, original.objectives), "ok")
        for i, t in enumerate(history)
    ]
    resumed = make(2)
    resumed.replay(recorded)
    if _ask_tell(resumed, 4) != _ask_tell(original, 4):
        raise _fail(what, "a replayed strategy does not continue like the original.")
    arch = original.ask()
    original.tell(arch, None, "timeout")  # any status but "ok" is a failure
    _ask_tell(original, 2)
    screened = make(3)
    screened.screen = lambda a: "has a none edge" if "none" in str(a) else None
    asked = _ask_tell(screened, 8)
    if any("none" in a for a in asked) or not screened.redrawn["has a none edge"]:
        raise _fail(what, "asked architectures its screen rejects.")


def check_family(name: str, deep: bool = False) -> None:
    """A zoo family has tasks, a default config that validates, a grammar whose draws are
    valid configs, and (``deep``) a default model that builds and runs on its task data."""
    from nas.sampling import Sampler
    from nas.zoo import arch_from_config, config_from_arch, get_family, zoo_space

    what = f"zoo family {name!r}"
    fam = get_family(name)
    if not fam.tasks or not (fam.summary or "").strip():
        raise _fail(what, "needs tasks and a one-line summary.")
    default = fam.config()
    _, again = config_from_arch(arch_from_config(fam, default))
    if again != default:
        raise _fail(what, "its default config does not survive the architecture string.")
    space = zoo_space(name)
    sampler = Sampler(space, seed=0)
    for _ in range(5):
        node = sampler.sample()
        try:
            config_from_arch(node)
        except NasError as e:
            raise _fail(what, f"its grammar draws {node}, not a valid config: {e}") from None
    if deep:
        import torch

        data = fam.make_data(fam.task().name, size="small", seed=0)
        torch.manual_seed(0)
        model = fam.build(default, data).eval()
        with torch.no_grad():
            fam.export_module(model, default)(*fam.example_inputs(default, data, batch=2))


def check_dataset(name: str, load: bool = True) -> None:
    """A dataset describes itself, and (``load``, where this machine has it) loads splits
    whose inputs have its shape and whose labels are its classes."""
    import numpy as np

    from nas.data import get_dataset_info, load_dataset

    what = f"dataset {name!r}"
    info = get_dataset_info(name)
    if not info.input_shape or any(d < 1 for d in info.input_shape) or info.num_classes < 2:
        raise _fail(what, f"shape {info.input_shape} and {info.num_classes} classes are invalid.")
    if not info.description.strip():
        raise _fail(what, "needs a description (nas datasets list shows it).")
    here = info.available()
    if here not in ("real", "stand-in", "missing"):
        raise _fail(what, f"available() must say real, stand-in or missing, not {here!r}.")
    if not load or here == "missing":
        return
    ds = load_dataset(name, size="small", seed=0)
    for split_name in ("train", "valid", "test"):
        split = getattr(ds, split_name)
        if len(split) == 0 or tuple(split.x.shape[1:]) != tuple(info.input_shape):
            raise _fail(
                what, f"{split_name} inputs are {split.x.shape}, not N x {info.input_shape}."
            )
        y = np.asarray(split.y)
        if y.min() < 0 or y.max() >= info.num_classes:
            raise _fail(what, f"{split_name} labels leave 0..{info.num_classes - 1}.")
