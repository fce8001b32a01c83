"""NAS-Bench-201 200-epoch test accuracies of all 15,625 cells (Dong & Yang, ICLR 2020).

The table (``nb201_200epoch_test.csv.gz``, see PROVENANCE.md) is keyed by NB201's cell
string. It makes a search on the ``nb201`` space free to evaluate, and its exact order
statistics give random search's expected best, the bar every strategy must clear.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass
from importlib import resources

from nas.dsl.arch import Node, parse_arch
from nas.exceptions import ConfigurationError, UnknownNameError
from nas.nb201 import from_nb201, to_nb201
from nas.registry import unknown_name

__all__ = ["DATASETS", "TABLE_INPUT_SHAPE", "TABLE_NUM_CLASSES", "NB201Table", "table_dataset"]

#: Dataset names, in the table's column order.
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
#: The network a table-mode trial stands for: NB201's CIFAR input and its 10-class head.
TABLE_INPUT_SHAPE: tuple[int, ...] = (3, 32, 32)
TABLE_NUM_CLASSES = 10
_FILE = "nb201_200epoch_test.csv.gz"


def _dataset(name: str) -> str:
    """The canonical dataset name (case-insensitive), or UnknownNameError."""
    key = name.lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise UnknownNameError(unknown_name("NB201 dataset", name, DATASETS))
    return key


def table_dataset(name: str):
    """The ``nb201:NAME`` dataset scheme: a table lookup standing in for training.

    Returns the :class:`nas.data.DatasetInfo` of the table (input shape and classes of the
    network a table-mode trial stands for).
    """
    from nas.data import DatasetInfo

    key = _dataset(name)
    return DatasetInfo(
        name=f"nb201:{key}",
        input_shape=TABLE_INPUT_SHAPE,
        num_classes=TABLE_NUM_CLASSES,
        full_sizes=(0, 0, 0),
        has_standin=False,
        description=f"NAS-Bench-201 200-epoch test accuracy on {key} (table mode)",
    )


table_dataset.names = DATASETS  # type: ignore[attr-defined]  # listed in dataset errors


@dataclass(frozen=True, eq=False)
class NB201Table:
    """The NB201 200-epoch test accuracy (%) of every cell on three datasets.

    Accuracies are means over NB201's training seeds, rounded to 2 decimals; CIFAR-10 is
    trained on train+valid, ImageNet16-120 is scored on its x-test split.

    Args:
        archs: NB201 cell strings, in NB201 index order.
        acc: dataset name -> accuracies, aligned with ``archs``.

    Example:
        >>> t = NB201Table.load()
        >>> round(t.optimum("cifar10"), 2)
        94.37
        >>> round(t.expected_best_random("cifar10", 200), 2)
        93.97
    """

    archs: tuple[str, ...]
    acc: dict[str, tuple[float, ...]]

    @classmethod
    def load(cls) -> NB201Table:
        """The shipped table (read once per process)."""
        return _load()

    def __len__(self) -> int:
        return len(self.archs)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.archs)}

    @functools.cached_property
    def _sorted(self) -> dict[str, tuple[float, ...]]:
        return {d: tuple(sorted(v)) for d, v in self.acc.items()}

    def key(self, arch: Node | str) -> str:
        """NB201's cell string of ``arch`` (a Node, our arch string or an NB201 string).

        Raises:
            ArchSyntaxError: ``arch`` is not an NB201 architecture.
            ConfigurationError: its skeleton is not the benchmark's (c=16, n=5).
        """
        if isinstance(arch, str) and not arch.lstrip().startswith("|"):
            arch = parse_arch(arch)
        if isinstance(arch, Node):
            params = dict(arch.params) if arch.op == "nb201" else {}
            if params and (params.get("c"), params.get("n")) != (16, 5):
                raise ConfigurationError(
                    "the NB201 table covers the skeleton c=16, n=5 only, but got "
                    f"c={params.get('c')}, n={params.get('n')}."
                )
            return to_nb201(arch)
        return to_nb201(from_nb201(arch))

    def accuracy(self, arch: Node | str, dataset: str = "cifar10") -> float:
        """Test accuracy (%) of ``arch`` on ``dataset`` after 200 epochs.

        Raises:
            UnknownNameError: unknown dataset.
            ArchSyntaxError, ConfigurationError: ``arch`` is not a benchmark cell.
        """
        ds = _dataset(dataset)
        return self.acc[ds][self._index[self.key(arch)]]

    def optimum(self, dataset: str = "cifar10") -> float:
        """The best test accuracy of any cell on ``dataset``."""
        return self._sorted[_dataset(dataset)][-1]

    def expected_best_random(self, dataset: str, n: int, replace: bool = True) -> float:
        """Exact expected best accuracy of ``n`` uniform draws from the table.

        Order statistics over the sorted accuracies: the best of ``n`` draws is the i-th
        smallest of N with probability (i/N)^n - ((i-1)/N)^n (with replacement), or
        C(i,n)/C(N,n) - C(i-1,n)/C(N,n) without (random search that skips repeats).

        Raises:
            ConfigurationError: ``n`` is not a positive number of draws.
        """
        values = self._sorted[_dataset(dataset)]
        size = len(values)
        if not isinstance(n, int) or n < 1 or (not replace and n > size):
            limit = "" if replace else f" and at most {size} without replacement"
            raise ConfigurationError(f"n must be a positive integer{limit}, but got n={n!r}.")
        if replace:
            cdf = [(i / size) ** n for i in range(size + 1)]
        else:
            # P(max <= v_i) = C(i, n) / C(N, n), built down from i = N by the ratio (i-n)/i.
            cdf = [0.0] * (size + 1)
            cdf[size] = 1.0
            for i in range(size, n, -1):
                cdf[i - 1] = cdf[i] * (i - n) / i
        return sum(v * (cdf[i + 1] - cdf[i]) for i, v in enumerate(values))


@functools.cache
def _load() -> NB201Table:
    raw = resources.files("nas.benchmarks").joinpath(_FILE).read_bytes()
    rows = csv.reader(io.StringIO(gzip.decompress(raw).decode()))
    header = next(rows)
    if header != ["arch", *DATASETS]:
        raise RuntimeError(f"{_FILE} has unexpected columns {header}.")
    archs: list[str] = []
    cols: list[list[float]] = [[] for _ in DATASETS]
    for row in rows:
        archs.append(row[0])
        for col, v in zip(cols, row[1:], strict=True):
            col.append(float(v))
    return NB201Table(tuple(archs), {d: tuple(c) for d, c in zip(DATASETS, cols, strict=True)})
