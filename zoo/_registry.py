"""The zoo registry: a published model family = modules + config + task(s) + grammar.

A family is one class registered with :func:`register_family`. Its hyperparameters are a
typed config (``hyperparams``); its search space is ``grammars/zoo/<name>.pcfg``, a config
space of the DSL (``config <name> { KEY = V1 | V2 ... }``) whose sentences are
``<name>(hp(k=KEY, v=VALUE), ...)``, so every strategy that searches a grammar also
searches a family's hyperparameters (see docs/zoo.md).
"""

from __future__ import annotations

import json
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nas.exceptions import ConfigurationError, UnknownNameError
from nas.registry import Registry, close_names

if TYPE_CHECKING:
    from torch import nn

    from nas.dsl import Node

__all__ = [
    "Family",
    "TaskInfo",
    "ZooResult",
    "config_from_arch",
    "get_family",
    "list_families",
    "parse_config",
    "register_family",
]


@dataclass(frozen=True)
class TaskInfo:
    """One task a family is trained and scored on (generated offline)."""

    name: str
    description: str
    metric: str
    higher_is_better: bool = True


@dataclass
class ZooResult:
    """What :meth:`Family.fit` returns: scores on the validation and test splits.

    ``valid`` and ``test`` map metric names to values; both hold the task's primary
    metric. ``extra`` holds anything else worth reporting (expert usage, code usage, ...).
    """

    valid: dict[str, float]
    test: dict[str, float]
    epochs: int = 0
    seconds: float = 0.0
    status: str = "ok"
    reason: str = ""
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON output and run stores)."""
        return {
            "status": self.status,
            "reason": self.reason,
            "valid": self.valid,
            "test": self.test,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 2),
            **({"extra": self.extra} if self.extra else {}),
        }


class Family(ABC):
    """A model family of the zoo.

    Subclasses set the class attributes and implement :meth:`build`, :meth:`make_data`,
    :meth:`fit`, :meth:`baseline` and :meth:`example_inputs`. Families own their training
    loop because their tasks differ (regression pairs, sequences, fields, puzzles);
    :mod:`nas.zoo._fit` holds the shared pieces.

    Attributes:
        name: registry name (``zoo:<name>`` on the command line).
        summary: one line for ``nas zoo list``.
        paper: the publication the family follows.
        variants: named variants (the ``variant`` hyperparameter, if any).
        tasks: the family's tasks; the first is the default.
        hyperparams: every hyperparameter with its default value, in grammar order; the
            type of the default is the type of the hyperparameter.
        input_names / output_names: names of the exported graph's inputs and outputs.
        train_seconds: seconds the default config trains for its default epochs on a 2-core
            CPU with one thread (``bench/zoo.py``); a search's per-trial and total time caps
            scale with it.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    variants: ClassVar[tuple[str, ...]] = ()
    tasks: ClassVar[tuple[TaskInfo, ...]] = ()
    hyperparams: ClassVar[dict[str, Any]] = {}
    # The hyperparameters the grammar writes, in order (None: all of ``hyperparams``).
    searched: ClassVar[tuple[str, ...] | None] = None
    # A grammar file outside the package (tests, users' own families); None means
    # grammars/zoo/<name>.pcfg shipped with nas.
    grammar_path: ClassVar[str | None] = None
    input_names: ClassVar[tuple[str, ...]] = ("input",)
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    train_seconds: ClassVar[float] = 60.0

    # -- config -----------------------------------------------------------------------------
    def config(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The default config with ``overrides`` applied, each converted to its type.

        Raises:
            ConfigurationError: an unknown key or a value of the wrong type.
        """
        cfg = dict(self.hyperparams)
        for key, value in (overrides or {}).items():
            if key not in cfg:
                close = close_names(key, list(cfg), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"zoo:{self.name} has no hyperparameter {key!r}.{hint} "
                    f"Known: {', '.join(cfg)}."
                )
            cfg[key] = _convert(self.name, key, value, self.hyperparams[key])
        if self.variants and cfg.get("variant") not in self.variants:
            raise ConfigurationError(
                f"zoo:{self.name} has no variant {cfg.get('variant')!r}; "
                f"variants: {', '.join(self.variants)}."
            )
        self.validate(cfg)
        return cfg

    def validate(self, config: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise ConfigurationError if ``config`` is inconsistent (override if needed)."""

    def task(self, name: str | None = None) -> TaskInfo:
        """The task called ``name`` (the default task when None)."""
        if name is None:
            return self.tasks[0]
        for t in self.tasks:
            if t.name == name:
                return t
        names = [t.name for t in self.tasks]
        guess = close_names(name, names)
        hint = f"; did you mean {' or '.join(map(repr, guess))}?" if guess else ""
        raise UnknownNameError(
            f"zoo:{self.name} has no task {name!r}{hint}; its tasks: {', '.join(names)}."
        )

    # -- model, data, training ------------------------------------------------------------
    @abstractmethod
    def make_data(self, task: str, size: str = "small", seed: int = 0) -> Any:
        """Generate (or read back from the cache) the task's splits; family-specific."""

    @abstractmethod
    def build(self, config: dict[str, Any], data: Any) -> nn.Module:
        """The model for ``config`` on ``data`` (which fixes input sizes and task count)."""

    @abstractmethod
    def fit(
        self,
        model: nn.Module,
        config: dict[str, Any],
        data: Any,
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    ) -> ZooResult:
        """Train ``model`` on ``data`` and score it; ``epochs`` None means the default.

        ``on_epoch(epoch, valid_metrics)`` is called after each epoch; returning False
        stops training early (search schedulers use it).
        """

    @abstractmethod
    def baseline(self, data: Any) -> dict[str, float]:
        """Test metrics of a trivial, input-blind predictor (what a model must beat)."""

    @abstractmethod
    def example_inputs(self, config: dict[str, Any], data: Any, batch: int = 2) -> tuple:
        """A batch of model inputs (tensors) used for export and the parity check."""

    def export_module(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        """The module to export (e.g. a plain copy of a slimmed sub-network)."""
        return model

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """ONNX dynamic axes: the batch axis of every input and output by default."""
        return {n: {0: "batch"} for n in (*self.input_names, *self.output_names)}

    def configure(self, **kwargs: Any) -> dict[str, Any]:
        """Family-specific configuration search (``nas zoo configure``); most have none."""
        raise ConfigurationError(f"zoo:{self.name} has no configure step.")

    # -- description ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Plain data for ``nas zoo list --json``."""
        return {
            "name": self.name,
            "summary": self.summary,
            "paper": self.paper,
            "variants": list(self.variants),
            "tasks": [
                {
                    "name": t.name,
                    "metric": t.metric,
                    "higher_is_better": t.higher_is_better,
                    "description": t.description,
                }
                for t in self.tasks
            ],
            "metric": self.tasks[0].metric if self.tasks else "",
            "hyperparams": dict(self.hyperparams),
        }


def _convert(family: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the hyperparameter's default (:func:`nas.dsl.config.convert`)."""
    from nas.dsl.config import convert

    kind = type(default)
    try:
        return convert(value, kind)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"zoo:{family} hyperparameter {key!r} must be {kind.__name__}, got {value!r}."
        ) from None


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: add a family to the zoo and declare its config node in the DSL.

    The config node (``<name>(hp(...), ...)``, one ``hp`` per searched key) is declared in
    the DSL's config vocabulary, not the op registry, so the family's architecture strings
    parse as soon as it is registered.

    Raises:
        DuplicateNameError: another family already has the name.
        ConfigurationError: the name is an op or a config declared with other keys.
    """
    from nas.dsl.config import declare_config

    if not cls.name or not cls.name.isidentifier() or not cls.tasks:
        raise ValueError(f"a zoo family needs a lowercase name and tasks, got {cls.name!r}")
    keys = tuple(cls.searched or cls.hyperparams)
    unknown = [k for k in keys if k not in cls.hyperparams]
    if unknown:
        raise ValueError(f"zoo:{cls.name} searches unknown hyperparameters {unknown}")
    FAMILIES.add(cls.name, cls)
    declare_config(cls.name, keys, origin=f"zoo:{cls.name}")
    return cls


def _declare_builtin() -> None:
    """Every public module of this package is one family, imported only when it is used."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.name.startswith("_"):
            FAMILIES.add_lazy(info.name, f"nas.zoo.{info.name}")


def list_families() -> list[str]:
    """Names of the families (built-in and registered), sorted; imports none of them."""
    return FAMILIES.names()


def get_family(name: str) -> Family:
    """An instance of family ``name`` (``zoo:`` prefix allowed); imports that family only.

    Raises:
        UnknownNameError: no such family; the message lists the known ones.
    """
    return FAMILIES.get(name.removeprefix("zoo:"))()


def parse_config(text: str | None) -> dict[str, Any]:
    """A config given on the command line: JSON text, or ``@file`` holding JSON.

    Raises:
        ConfigurationError: unreadable file, invalid JSON or not an object.
    """
    if not text:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise ConfigurationError(
                f"cannot read config file {text[1:]}: {e.strerror}."
            ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigurationError(
            f"the config is not valid JSON: {e.msg} (char {e.pos})."
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError("the config must be a JSON object of hyperparameters.")
    return data


def config_from_arch(arch: Node | str) -> tuple[Family, dict[str, Any]]:
    """The family and config written by a zoo architecture string ``fam(hp(k=..,v=..),..)``.

    Raises:
        ConfigurationError, UnknownNameError: not a zoo architecture, or a bad value.
    """
    from nas.dsl import parse_arch
    from nas.dsl.config import config_values

    if isinstance(arch, str) and arch.split("(", 1)[0].strip() in FAMILIES:
        get_family(arch.split("(", 1)[0].strip())  # registering declares its config node
    node = parse_arch(arch) if isinstance(arch, str) else arch
    family = get_family(node.op)
    try:
        values = config_values(node)
    except ConfigurationError:
        raise ConfigurationError(f"zoo:{family.name} children must be hp(k=..., v=...).") from None
    return family, family.config(dict(values))


def arch_from_config(family: Family, config: dict[str, Any]) -> str:
    """The architecture string of ``config``'s searched hyperparameters.

    The inverse of :func:`config_from_arch` for configs that keep the other defaults.
    """
    keys = family.searched or tuple(family.hyperparams)
    parts = ",".join(f"hp(k={k},v={_text(config[k])})" for k in keys)
    return f"{family.name}({parts})"


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


#: The zoo: family name -> class. Built-in families are declared lazily (one import each);
#: installed packages add theirs through the ``nas.zoo`` entry-point group.
FAMILIES: Registry[type[Family]] = Registry("zoo family", entry_points="nas.zoo")
_declare_builtin()
