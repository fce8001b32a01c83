"""The strategy interface: a strategy asks for architectures and is told their results.

A strategy knows nothing about training: the caller evaluates what ``ask`` returns (by
training it, or by looking it up in a benchmark table) and passes the numbers to ``tell``.
Strategies keep no state that the history of asks and tells cannot rebuild, so a resumed
search recreates the strategy from its name, seed and options and calls ``replay``.
"""

from __future__ import annotations

import inspect
import json
import math
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.searches.objectives import DIRECTIONS

from nas.dsl.arch import Node
from nas.exceptions import ConfigurationError, NasError
from nas.space import SearchSpace

__all__ = [
    "DIRECTIONS",
    "STATUSES",
    "Event",
    "HistoryEntry",
    "ReplayError",
    "Strategy",
    "StrategyOption",
]

#: ``"ok"``: the trial has values. Any other status (``"failed"``, ``"timeout"``, ``"oom"``,
#: ...) is a failure; ``replay`` also takes ``"pending"`` (asked, never told).
STATUSES: tuple[str, ...] = ("ok", "failed", "pending")
#: One recorded trial: the architecture, its values (None if failed) and its status.
HistoryEntry = tuple[Node | str, Mapping[str, float] | None, str]
#: One event of a search: ``("ask", arch)`` or ``("tell", arch, values, status)``.
Event = tuple[str, Node | str] | tuple[str, Node | str, Mapping[str, float] | None, str]


class ReplayError(NasError, RuntimeError):
    """A recorded history is not what this strategy asks (other seed, options or code)."""


def _short(arch: Node | str) -> str:
    text = str(arch)
    return text if len(text) < 70 else text[:67] + "..."


@dataclass(frozen=True)
class StrategyOption:
    """One user option of a strategy: its name, default and help (from the strategy itself)."""

    name: str
    default: Any
    kind: str  # the annotation as written, e.g. "int" or "Sequence[str | Node]"
    help: str = ""

    def parse(self, text: str) -> Any:
        """A command-line value (``key=value``) as this option's type.

        Numbers, booleans, null and JSON lists are read as JSON; a sequence option also
        takes comma-separated words; anything else stays a string.
        """
        if "Sequence" in self.kind or "list" in self.kind:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return [w.strip() for w in text.split(",") if w.strip()]
            return value if isinstance(value, list) else [value]
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        return self._checked(value, text)

    def _checked(self, value: Any, text: str) -> Any:
        """``value`` when it fits the option's type (int, float, bool; None where the
        option allows it; a number at least 0, a probability or share at most 1)."""
        kinds = {k.strip() for k in self.kind.split("|")}
        if value is None and "None" in kinds:
            return value
        wants = [k for k in ("bool", "int", "float") if k in kinds]
        if not wants:
            return value
        fits = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
        }
        if not any(fits[k] for k in wants):
            what = {"bool": "true or false", "int": "a whole number", "float": "a number"}
            takes = " or ".join(what[k] for k in wants)
            raise ConfigurationError(f"option {self.name} takes {takes}, but got {text!r}.")
        if isinstance(value, bool):
            return value
        top = 1 if self.name.endswith(("_prob", "_frac")) else math.inf
        if not 0 <= value <= top:  # NaN too
            bound = "between 0 and 1" if top == 1 else "at least 0"
            raise ConfigurationError(f"option {self.name} must be {bound}, but got {text}.")
        return value


class Strategy(ABC):
    """Base of all search strategies: ``ask`` for an architecture, ``tell`` its result.

    During a search, each trial goes through:

    1. ``ask()``: the strategy's ``propose()`` draws an architecture. A proposal equal to
       one asked before is handed to ``discard()`` and drawn again, at most ``max_retries``
       times (then the repeat is returned).
    2. The caller evaluates it; the strategy never sees how.
    3. ``tell(arch, values, status)``: the result goes to ``observe()``. ``values`` maps
       each objective name to a number, or is None for a failed trial (``status="failed"``),
       which must never break a strategy. Any status other than ``"ok"`` is a failure.

    Several asks may be outstanding before their tells (parallel workers). Given the same
    seed, options and results, a strategy asks the same architectures; ``replay`` uses this
    to rebuild its state from a recorded history. Subclasses implement ``propose`` and
    ``observe``; ``discard`` does nothing by default.

    Args:
        space: the search space the architectures come from.
        seed: seed of every random choice the strategy makes.
        objectives: names of the values ``tell`` receives. Single-objective strategies
            optimise the first.
        directions: ``"maximize"`` or ``"minimize"`` per objective name, for names not in
            ``DIRECTIONS`` or to override it.
        max_retries: redraws of a proposal that repeats an asked architecture.

    Example:
        >>> from nas.searches import create_strategy
        >>> from nas.space import load_space
        >>> strategy = create_strategy("rs", load_space("nb201"), seed=0)
        >>> arch = strategy.ask()
        >>> strategy.tell(arch, {"accuracy": 91.2})
    """

    #: Registry name, set by each subclass.
    name: ClassVar[str] = ""
    #: Help of each user option (an ``__init__`` keyword), shown by ``nas search --help``.
    option_help: ClassVar[dict[str, str]] = {}
    #: ``__init__`` keywords that are wiring, set by the search itself, not user options.
    internal_options: ClassVar[frozenset[str]] = frozenset(
        {"objectives", "directions", "max_retries", "scorer", "recorder"}
    )
    #: Most objectives the strategy can optimise (None: any number).
    max_objectives: ClassVar[int | None] = None
    #: Objectives used when the caller gives none.
    default_objectives: ClassVar[tuple[str, ...]] = ("accuracy",)

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.objectives = tuple(objectives or self.default_objectives)
        if isinstance(objectives, str) or not self.objectives:
            raise ConfigurationError(
                f"objectives must be a non-empty sequence of names, but got {objectives!r}."
            )
        if self.max_objectives is not None and len(self.objectives) > self.max_objectives:
            raise ConfigurationError(
                f"strategy {self.name!r} optimises at most {self.max_objectives} objective(s), "
                f"but got objectives={self.objectives}."
            )
        self.directions = tuple(self._direction(o, directions or {}) for o in self.objectives)
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be a non-negative integer, but got {max_retries!r}."
            )
        self.max_retries = max_retries
        self.n_asked = 0
        self.n_told = 0
        self._asked: set[str] = set()
        self._pending: dict[str, int] = {}
        #: A reason not to evaluate an architecture at all (e.g. nothing learnable before
        #: the head), or None; the search sets it. A screened proposal is drawn again, like
        #: a repeat, so it costs no trial.
        self.screen: Callable[[Node], str | None] | None = None
        #: The key proposals are compared by for repeats (the search may set a canonical
        #: form under which differently written equal networks are one architecture).
        self.identity: Callable[[Node], str] = str
        #: Proposals drawn again, by reason ("repeat" or the screen's reason).
        self.redrawn: Counter[str] = Counter()
        #: How the current proposal was made, set by ``propose``: ``{"op": "seed"}``, or a
        #: mutation ``{"op": OPERATOR, "parent": ARCH}``; None for a draw from the grammar.
        self.last_origin: dict[str, str] | None = None
        self._origins: dict[str, dict[str, str]] = {}

    @staticmethod
    def _direction(objective: str, given: Mapping[str, str]) -> str:
        d = given.get(objective, DIRECTIONS.get(objective))
        if d not in ("maximize", "minimize"):
            raise ConfigurationError(
                f"objective {objective!r} needs a direction ('maximize' or 'minimize'), "
                f"but got {d!r}; pass directions={{{objective!r}: 'maximize'}}."
            )
        return d

    # ------------------------------------------------------------------ subclass core
    @abstractmethod
    def propose(self) -> Node:
        """Draw the next architecture (``ask`` filters out repeats)."""

    @abstractmethod
    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        """Take the result of an asked architecture (``values`` None if it failed)."""

    def discard(self, arch: Node) -> None:
        """Forget a proposal ``ask`` rejected as a repeat (hook; does nothing by default)."""
        return None

    # ---------------------------------------------------------------------- public API
    @classmethod
    def declared_options(cls) -> dict[str, StrategyOption]:
        """The user options: every ``__init__`` keyword of the class and its bases."""
        found: dict[str, StrategyOption] = {}
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                    continue
                if p.name in {"self", "space", "seed"} | cls.internal_options:
                    continue
                default = None if p.default is p.empty else p.default
                found[p.name] = StrategyOption(
                    p.name, default, str(p.annotation), cls.option_help.get(p.name, "")
                )
        return found

    @classmethod
    def check_options(cls, given: Mapping[str, Any]) -> None:
        """Raise ConfigurationError for a declared option whose value has the wrong type or
        range (options given in Python, not parsed from the command line)."""
        declared = cls.declared_options()
        for key, value in given.items():
            if key in declared:
                declared[key]._checked(value, str(value))

    @classmethod
    def resolve_options(
        cls, given: Mapping[str, Any], trials: int, preset: str | None = None
    ) -> dict[str, Any]:
        """The options a search of ``trials`` trials runs with: ``given`` plus any default
        that depends on the budget or on the training ``preset`` (``einspace``: the paper's
        settings). A run stores the result, so a resume (or an extended budget) keeps the
        options it started with."""
        return dict(given)

    def ask(self) -> Node:
        """The next architecture to evaluate, one not asked before whenever possible."""
        arch = self._propose()
        for _ in range(self.max_retries):
            why = self._rejection(arch)
            if why is None:
                break
            self.redrawn[why] += 1
            self.discard(arch)
            arch = self._propose()
        key = str(arch)
        self._origins[key] = self.last_origin or {"op": "draw"}
        self._asked.add(self.identity(arch))
        self._pending[key] = self._pending.get(key, 0) + 1
        self.n_asked += 1
        return arch

    def _propose(self) -> Node:
        self.last_origin = None
        return self.propose()

    def origin(self, arch: Node | str) -> dict[str, str]:
        """How an asked architecture was made: ``{"op": "draw"}`` (the grammar),
        ``{"op": "seed"}``, or ``{"op": OPERATOR, "parent": ARCH}`` for a mutation."""
        return dict(self._origins.get(str(arch), {"op": "draw"}))

    def _rejection(self, arch: Node) -> str | None:
        """Why ``arch`` should be drawn again ("repeat", the screen's reason), or None."""
        if self.identity(arch) in self._asked:
            return "repeat"
        return self.screen(arch) if self.screen is not None else None

    def tell(
        self, arch: Node, values: Mapping[str, float] | None = None, status: str = "ok"
    ) -> None:
        """Report the result of an asked architecture.

        Args:
            arch: an architecture ``ask`` returned and not yet told.
            values: objective name -> number; ignored unless ``status`` is ``"ok"``.
            status: ``"ok"``, or why the trial failed (``"failed"``, ``"timeout"``, ...).

        Raises:
            ConfigurationError: an empty status, missing or non-finite values for an ``ok``
                trial, or ``arch`` is not awaiting a result.
        """
        if not isinstance(status, str) or not status or status == "pending":
            raise ConfigurationError(
                f"status must be 'ok' or a failure reason such as 'failed', but got {status!r}."
            )
        key = str(arch)
        if not self._pending.get(key):
            raise ConfigurationError(
                f"tell() needs an architecture that was asked and not yet told, "
                f"but got {_short(arch)}."
            )
        clean = self._check_values(values) if status == "ok" else None
        self._pending[key] -= 1
        if not self._pending[key]:
            del self._pending[key]
        self.n_told += 1
        self.observe(arch, clean, status)

    def replay(self, history: Sequence[HistoryEntry]) -> None:
        """Re-apply a sequential search's history to a freshly created strategy.

        Each entry is asked again and told its recorded result (``"pending"`` entries are
        asked only), so the next ask is the one the uninterrupted search would make. For a
        search with several trials in flight use ``replay_events``.

        Raises:
            ReplayError: the strategy asks something other than the recorded architecture.
        """
        events: list[Event] = []
        for arch, values, status in history:
            events.append(("ask", arch))
            if status != "pending":
                events.append(("tell", arch, values, status))
        self.replay_events(events)

    def replay_events(self, events: Sequence[Event]) -> None:
        """Re-apply asks and tells in the order they happened (exact for parallel searches).

        Raises:
            ReplayError: an ask gives something other than the recorded architecture.
        """
        pending: dict[str, list[Node]] = {}
        for i, event in enumerate(events):
            kind, arch = event[0], event[1]
            if kind == "ask":
                asked = self.ask()
                if str(asked) != str(arch):
                    raise ReplayError(
                        f"recorded ask {i} is {_short(arch)} but this strategy asks "
                        f"{_short(asked)}; was it made with another seed or options?"
                    )
                pending.setdefault(str(asked), []).append(asked)
            elif kind == "tell" and len(event) == 4 and pending.get(str(arch)):
                self.tell(pending[str(arch)].pop(0), event[2], event[3])
            else:
                raise ReplayError(f"event {i} is neither an ask nor a tell of an asked arch.")

    def fitness(self, values: Mapping[str, float] | None) -> float:
        """The first objective, signed so larger is better; -inf for a failed trial."""
        if values is None:
            return -math.inf
        v = float(values[self.objectives[0]])
        return v if self.directions[0] == "maximize" else -v

    def _check_values(self, values: Mapping[str, float] | None) -> dict[str, float]:
        if not isinstance(values, Mapping):
            raise ConfigurationError(
                "values must map each objective to a number when status='ok' "
                f"(use status='failed' for a failed trial), but got {values!r}."
            )
        out = {}
        for o in self.objectives:
            if o not in values:
                raise ConfigurationError(
                    f"values must include objective {o!r}, but got keys {sorted(values)}."
                )
            try:
                v = float(values[o])
            except (TypeError, ValueError):
                v = math.nan
            if not math.isfinite(v):
                raise ConfigurationError(
                    f"values must be finite numbers, but got {o}={values[o]!r}; "
                    "tell status='failed' instead."
                )
            out[o] = v
        return out
