"""Dataset registry: names -> loaders, with what each needs and what this machine has.

``unseen:<member>`` reads the real Unseen NAS files when they are found and otherwise falls
back to the member's offline stand-in (``standin:<...>``) if it has one; ``Dataset.source``
always says which was used. ``unseen`` alone is the default member, Language (see nas.data.unseen).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nas.data import unseen
from nas.data.base import Dataset, Split
from nas.data.cache import cached
from nas.exceptions import ConfigurationError, UnknownNameError
from nas.registry import DuplicateNameError, Registry, unknown_name

#: (train, valid, test) images of a generated stand-in. ``small`` is the default search's:
#: 2,000 images to train on, and validation and test sets large enough that one image is
#: 0.1 and 0.05 points, so that the search selects and the report compares on more than noise.
SIZES = {
    "small": (2_000, 1_000, 2_000),
    "medium": (10_000, 2_000, 2_000),
    "full": (45_000, 15_000, 10_000),
}
Loader = Callable[[str | os.PathLike | None, str, int], Dataset]


@dataclass(frozen=True)
class DatasetInfo:
    """What a registered dataset is, without loading it."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    full_sizes: tuple[int, int, int]
    has_standin: bool
    description: str
    real_key: str | None = None  # Unseen NAS member whose real files this name reads
    loader: Loader | None = field(default=None, repr=False, compare=False)

    def available(self, data_dir: str | os.PathLike | None = None) -> str:
        """``"real"`` (files found), ``"stand-in"`` (generated offline) or ``"missing"``."""
        if self.real_key is not None:
            root, _ = unseen.resolve_data_dir(data_dir)
            if unseen.find_folder(self.real_key, root) is not None:
                return "real"
        return "stand-in" if self.has_standin else "missing"


#: Registered datasets by name, listed in registration order; aliases stay in ``_ALIASES``.
DATASETS: Registry[DatasetInfo] = Registry("dataset", ordered=True)
_ALIASES: dict[str, str] = {"unseen": f"unseen:{unseen.DEFAULT_MEMBER}"}


def _key(name: str) -> str:
    """Lookup key: case-insensitive, separators ignored after the prefix (add_nist = addnist)."""
    prefix, _, rest = name.strip().lower().partition(":")
    return f"{prefix}:{unseen.normalise(rest)}" if rest else unseen.normalise(prefix)


def register_dataset(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    description: str,
    has_standin: bool,
    full_sizes: tuple[int, int, int] = SIZES["full"],
    real_key: str | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(data_dir, size, seed) -> Dataset`` under ``name``.

    Raises:
        DuplicateNameError: ``name`` is taken, up to case and separators (``add_nist`` is
            ``addnist``).
    """

    def deco(loader: Loader) -> Loader:
        taken = _registered(name)
        if taken is not None:
            also = f" as {taken!r}" if taken != name else ""
            raise DuplicateNameError(f"dataset {name!r} is already registered{also}.")
        info = DatasetInfo(
            name, input_shape, num_classes, full_sizes, has_standin, description, real_key, loader
        )
        DATASETS.add(name, info)
        return loader

    return deco


def list_datasets(include_aliases: bool = False) -> list[str]:
    """Registered names in registration order (aliases such as ``unseen`` on request)."""
    return [*DATASETS.names(), *(_ALIASES if include_aliases else ())]


def _registered(name: str) -> str | None:
    """The registered name ``name`` reads as (case and separators ignored), or None."""
    wanted = _key(name)
    return next((n for n in DATASETS.names() if _key(n) == wanted), None)


def _resolve(name: str) -> str:
    """The canonical registered name for ``name``, or UnknownNameError listing valid ones."""
    wanted = _key(name)
    for alias, target in _ALIASES.items():
        if _key(alias) == wanted:
            return target
    registered = _registered(name)
    if registered is not None:
        return registered
    raise UnknownNameError(unknown_name("dataset", name, list_datasets(include_aliases=True)))


def get_dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a name or alias."""
    return DATASETS.get(_resolve(name))


#: Schemes whose names are evaluation tables rather than loadable datasets (``nb201:``):
#: scheme -> function of the rest of the name returning its DatasetInfo. A function with a
#: ``names`` attribute (the names it takes) has them listed in the unknown-dataset error.
DATASET_SCHEMES: Registry[Callable[[str], DatasetInfo]] = Registry("dataset scheme")
DATASET_SCHEMES.add_lazy("nb201", "nas.benchmarks.nb201:table_dataset")

#: What the unknown-dataset error of a search adds after the names: a zoo search's datasets.
ZOO_TASKS = "; with --space zoo:FAMILY, one of its tasks: nas zoo list"


def dataset_names() -> list[str]:
    """Every dataset name a search takes: registered names, aliases and each scheme's names
    (``nb201:cifar10``; ``SCHEME:NAME`` for a scheme that does not list them)."""
    names = list_datasets(include_aliases=True)
    for scheme in DATASET_SCHEMES.names():
        own = getattr(DATASET_SCHEMES.get(scheme), "names", None)
        names += [f"{scheme}:{n}" for n in own] if own else [f"{scheme}:NAME"]
    return names


def resolve_dataset(name: str) -> DatasetInfo:
    """What ``name`` is (shape, classes), for datasets and evaluation tables alike.

    Raises:
        UnknownNameError: no such dataset or table; the message names the closest and lists
            every name, schemes included.
    """
    scheme, sep, rest = str(name).partition(":")
    if sep and scheme.lower() in DATASET_SCHEMES:
        return DATASET_SCHEMES.get(scheme.lower())(rest)
    try:
        return get_dataset_info(name)
    except UnknownNameError:
        message = unknown_name("dataset", name, dataset_names(), ZOO_TASKS)
        raise UnknownNameError(message) from None


def _check_args(size: str, seed: int) -> None:
    if size not in SIZES:
        raise ConfigurationError(f"unknown dataset size {size!r}; expected one of {list(SIZES)}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigurationError(f"dataset seed must be a non-negative integer, got {seed!r}.")


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, size: str = "small", seed: int = 0
) -> Dataset:
    """Load ``name``: real files from ``data_dir``/``$NAS_DATA_DIR`` when found, else a stand-in.

    ``size`` (small, medium, full) and ``seed`` only affect generated stand-ins.
    """
    canonical = _resolve(name)
    _check_args(size, seed)
    info = DATASETS.get(canonical)
    assert info.loader is not None
    ds = info.loader(data_dir, size, int(seed))
    if _key(name) != _key(canonical):
        ds.meta["requested"] = name
        ds.meta["resolved"] = canonical
        ds.source = f"{name} = {canonical} (the default member); {ds.source}"
    return ds


# --- stand-ins -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Standin:
    """How to generate one stand-in and turn its cached arrays into a Dataset."""

    cache_name: str
    member: str  # Unseen NAS member it stands in for
    version: Callable[[], str]
    generate: Callable[[tuple[int, int, int], int], dict[str, np.ndarray]]
    describe: Callable[[], str]
    scale: float  # stored uint8 value -> float32 input
    extra_meta: Callable[[], dict] = dict


def _digits(kind: str) -> _Standin:
    from nas.data import digits

    return _Standin(
        f"{kind}-digits",
        kind,
        lambda: digits.VERSION,
        lambda counts, seed: digits.generate(kind, counts, seed),
        lambda: digits.describe(kind),
        1 / 255,
    )


def _language() -> _Standin:
    from nas.data import language

    def extra() -> dict:
        langs, subs = language.choose_languages()
        return {"languages": langs, "substitutions": subs}

    return _Standin(
        "language-wordfreq",
        "language",
        lambda: f"{language.VERSION}+wordfreq{language.wordfreq_version()}",
        language.generate,
        lambda: language.describe(language.choose_languages()[1]),
        1.0,
        extra,
    )


def _tiles() -> _Standin:
    from nas.data import tiles

    return _Standin(
        "shapetile", "cifartile", lambda: tiles.VERSION, tiles.generate, tiles.describe, 1 / 255
    )


_STANDINS: dict[str, Callable[[], _Standin]] = {
    "standin:addnist": lambda: _digits("addnist"),
    "standin:multnist": lambda: _digits("multnist"),
    "standin:language": _language,
    "standin:shapetile": _tiles,
}
_STANDIN_OF = {"addnist": "standin:addnist", "multnist": "standin:multnist"}
_STANDIN_OF |= {"language": "standin:language", "cifartile": "standin:shapetile"}


def _standin_arrays(name: str, size: str, seed: int) -> tuple[_Standin, dict, dict]:
    spec = _STANDINS[name]()
    counts = SIZES[size]
    required = tuple(f"{s}_{a}" for s in unseen.SPLITS for a in "xy")
    lengths = {f"{s}_y": n for s, n in zip(unseen.SPLITS, counts, strict=True)}
    arrays, cache_meta = cached(
        spec.cache_name,
        size,
        seed,
        spec.version(),
        lambda: spec.generate(counts, seed),
        required,
        lengths,
    )
    return spec, arrays, cache_meta


def load_components(name: str, size: str = "small", seed: int = 0) -> dict[str, np.ndarray]:
    """The components a stand-in drew (digits, words, tile classes, ...), keyed as in the cache.

    Lets anyone recompute labels or redraw samples; ``name`` may be an ``unseen:`` name.
    """
    canonical = _resolve(name)
    _check_args(size, seed)
    info = DATASETS.get(canonical)
    standin = _STANDIN_OF.get(info.real_key or "", canonical)
    if standin not in _STANDINS:
        raise ConfigurationError(f"dataset {canonical!r} has no generated stand-in.")
    _, arrays, _ = _standin_arrays(standin, size, int(seed))
    return {k: v for k, v in arrays.items() if not k.endswith(("_x", "_y"))}


def _load_standin(name: str, size: str, seed: int, reason: str = "") -> Dataset:
    spec, arrays, cache_meta = _standin_arrays(name, size, seed)
    member = unseen.MEMBERS[spec.member]
    splits = {
        s: Split(
            np.multiply(arrays[f"{s}_x"], spec.scale, dtype=np.float32),
            arrays[f"{s}_y"].astype(np.int64),
        )
        for s in unseen.SPLITS
    }
    extra = spec.extra_meta()
    subs = extra.get("substitutions")
    note = (
        "; wordfreq lacks " + ", ".join(f"{k} (used {v})" for k, v in subs.items()) if subs else ""
    )
    return Dataset(
        name=name,
        input_shape=member.input_shape,
        num_classes=member.num_classes,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        source=f"stand-in {name} generated offline (size {size}, seed {seed}){reason}{note}",
        meta={
            "suite": unseen.SUITE,
            "member": member.title,
            "kind": "stand-in",
            "standin": name,
            "recipe": spec.describe(),
            "generator_version": spec.version(),
            "size": size,
            "seed": seed,
            "split_sizes": {s: len(splits[s]) for s in unseen.SPLITS},
            "input_scale": spec.scale,  # stored value -> input (1/255: uint8 pixels)
            "components": f"nas.data.load_components({name!r}, {size!r}, {seed})",
            **cache_meta,
            **extra,
        },
    )


def _register_standin(name: str, member: str, description: str) -> None:
    m = unseen.MEMBERS[member]

    @register_dataset(
        name,
        input_shape=m.input_shape,
        num_classes=m.num_classes,
        description=description,
        has_standin=True,
    )
    def load(data_dir: str | os.PathLike | None, size: str, seed: int) -> Dataset:
        return _load_standin(name, size, seed)


def _register_member(member: unseen.Member) -> None:
    standin = _STANDIN_OF.get(member.key)
    tail = f"; without them, {standin}" if standin else " only"
    title = member.title

    @register_dataset(
        f"unseen:{member.key}",
        input_shape=member.input_shape,
        num_classes=member.num_classes,
        description=f"Unseen NAS {title} (real files{tail})",
        has_standin=standin is not None,
        real_key=member.key,
    )
    def load(data_dir: str | os.PathLike | None, size: str, seed: int) -> Dataset:
        root, origin = unseen.resolve_data_dir(data_dir)
        folder = unseen.find_folder(member.key, root)
        if folder is not None:
            ds = unseen.load_real(member.key, folder)
            ds.meta["data_dir_from"] = origin
            return ds
        if standin is None:
            raise ConfigurationError(unseen.missing_message(member.key, root))
        if origin == "--data-dir":  # asked for real files by name: a silent stand-in would lie
            raise ConfigurationError(
                f"no {title} folder under {root} (from --data-dir); point --data-dir at the "
                f"folder holding {title}/, or drop it to train on {standin}."
            )
        where = f"no {title} folder under {root}" if root else "no data directory given"
        reason = f", as no real {title} files were found ({where})"
        ds = _load_standin(standin, size, seed, reason)
        ds.name = f"unseen:{member.key}"
        return ds


for _m in unseen.MEMBERS.values():
    _register_member(_m)
_register_standin("standin:addnist", "addnist", "AddNIST recipe on scikit-learn's 8x8 digits")
_register_standin("standin:multnist", "multnist", "MultNIST recipe on scikit-learn's 8x8 digits")
_register_standin("standin:language", "language", "Language recipe on wordfreq word lists")
_register_standin("standin:shapetile", "cifartile", "CIFARTile's label rule on drawn shapes")
