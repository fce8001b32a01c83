"""``nas rank``'s work as a library call: score ONNX files, explain each score, one error each.

Every file gives either a row (score, params, FLOPs, depth, the NASWOT proxy, an
out-of-distribution flag, the model that scored it and notes on what could not be
computed) or one error row;
nothing a file does stops the others. The onnxruntime runs (unknown shapes, the proxy) are
capped in memory and stopped at the file's time limit (:mod:`nas.predictors.probe`); a run
that is skipped leaves a note in the row instead.

Invalid and absurd files: a file over the node limit (``--max-nodes``, counted before it is
parsed) or one the ONNX checker rejects is an error row; two checker objections that do not
matter to ranking (nodes out of topological order, a custom domain without an opset
import) are ranked with a note (:mod:`nas.predictors.onnxcheck`). Files are read one at a
time and only a compact record of each is kept (:mod:`nas.predictors.rank_read`), and the
set is scored in batches of bounded node count, so memory follows the largest file.

Out of distribution: a file is flagged when more than :data:`OOD_UNSEEN_SHARE` of its nodes
have op types the predictor was not trained on, or its parameters lie more than a factor
10 outside the training range (``domain.json`` beside the weights). Unseen ops (of custom
domains, or of ONNX versions newer than the training files) are still scored, through the
embedding of their normalised node text.

Which model: ``nas rank`` scores with the bundled NB201 model, unless more than
:data:`ROUTE_SHARE` of the files lie outside its domain; such a set is scored by the
bundled transfer model, trained on several spaces and chosen by the leave-one-space-out
table (docs/predictor.md). One model scores a whole set, so scores stay comparable within it.
:func:`choose_model` makes that choice, for the predictor strategy and ``nas predictor
eval`` too.

Few-shot (``labels``, ``nas rank --labels``): the user's accuracies of some files (those
not among the files given are added to the set) adapt the set's order
(:mod:`nas.predictors.fewshot`); rows say ``labelled`` and carry the ``accuracy``, and
:class:`RankResult` names the mode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.labels import label_of, with_labelled
from nas.predictors.onnxcheck import DEFAULT_MAX_NODES
from nas.predictors.onnxfile import DEFAULT_MAX_BYTES
from nas.predictors.probe import DEFAULT_PROBE_BYTES
from nas.predictors.rank_read import iter_read
from nas.predictors.record import GraphRecord
from nas.predictors.signals import depth
from nas.predictors.textviews import op_only

OOD_UNSEEN_SHARE = 0.05
# a set with more than this share of its files outside the default model's domain is
# scored by the bundled transfer model (trained on several spaces) instead
ROUTE_SHARE = 0.5


def save_domain(folder: str | Path, domain: Mapping[str, Any]) -> Path:
    """Write ``domain.json`` into a model folder."""
    path = Path(folder) / "domain.json"
    path.write_text(json.dumps(domain, indent=1) + "\n")
    return path


def load_domain(folder: str | Path | None) -> dict[str, Any] | None:
    """The training domain stored with a predictor (None when it has none)."""
    from nas.predictors.model import bundled_dir

    path = Path(folder or bundled_dir()) / "domain.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def ood_reason(record: GraphRecord, domain: Mapping[str, Any] | None) -> str:
    """Why ``record`` lies outside the predictor's training domain ("" when it does not)."""
    if not domain:
        return ""
    reasons = []
    ops = [op_only(t) for t in record.texts]
    seen = set(domain.get("ops", ()))
    unseen = sorted({o for o in ops if o not in seen})
    share = sum(o not in seen for o in ops) / max(1, len(ops))
    if share > OOD_UNSEEN_SHARE:
        reasons.append(f"{share:.0%} of nodes of unseen ops ({', '.join(unseen[:4])})")
    lo, hi = domain.get("params", (0, math.inf))
    if record.params < lo / 10 or record.params > hi * 10:
        reasons.append(f"{record.params:,} params, trained on {lo:,}-{hi:,}")
    return "; ".join(reasons)


Transfer = Callable[[], tuple[Any, Mapping[str, Any] | None]]


def bundled_transfer() -> Transfer | None:
    """A loader of the bundled transfer model and its domain (None when not shipped)."""
    from nas.predictors.model import TRANSFER_MODEL, Predictor, bundled_dir

    folder = bundled_dir(TRANSFER_MODEL)
    if not (folder / "config.json").exists():
        return None
    return lambda: (Predictor.load(folder), load_domain(folder))


def use_transfer(records: Sequence[GraphRecord], domain: Mapping[str, Any] | None) -> bool:
    """Whether a scored set lies mostly outside ``domain``: more than
    :data:`ROUTE_SHARE` of its files flagged out of distribution."""
    if not domain or not records:
        return False
    outside = sum(bool(ood_reason(r, domain)) for r in records)
    return outside > ROUTE_SHARE * len(records)


class _Bundled:
    """The default of :func:`choose_model`'s ``domain`` and ``transfer``: the bundled ones."""

    def __repr__(self) -> str:
        return "BUNDLED"


BUNDLED: Any = _Bundled()


def choose_model(
    records: Sequence[GraphRecord],
    domain: Mapping[str, Any] | None = BUNDLED,
    transfer: Transfer | None = BUNDLED,
) -> Transfer | None:
    """The model that scores ``records``, one set (one model scores a whole set, so its
    scores compare): ``transfer`` (a loader of the transfer model and its domain) when
    there is one and the set lies mostly outside ``domain``, the default model's training
    domain (:func:`use_transfer`); None when the default model scores it. Left out, both
    are the bundled ones (nb201-v1's ``domain.json``, :func:`bundled_transfer`): the choice
    between the bundled models that ``nas rank``, ``nas predictor eval`` and the predictor
    strategy make."""
    if transfer is BUNDLED:
        transfer = bundled_transfer()
    if transfer is None:
        return None
    if domain is BUNDLED:
        domain = load_domain(None)
    return transfer if use_transfer(records, domain) else None


@dataclass
class RankResult:
    """A ranked set: rows best first, error rows, the model that scored and the mode
    (``{"name": "zero-shot"}``, or the few-shot fit: :meth:`FewShot.describe`)."""

    rows: list[dict[str, Any]]
    errors: list[dict[str, str]]
    model: str
    mode: dict[str, Any]


def rank_files(
    files: Sequence[Path], predictor: Any, *args: Any, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(ranked rows, best first; error rows) of :func:`rank_set`, which takes the same
    arguments."""
    res = rank_set(files, predictor, *args, **kwargs)
    return res.rows, res.errors


def rank_set(
    files: Sequence[Path],
    predictor: Any,
    domain: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dims: Mapping[str, int] | None = None,
    time_limit_s: float | None = None,
    proxy: bool = False,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
    transfer: Transfer | None = None,
    workers: int = 1,
    max_nodes: int = DEFAULT_MAX_NODES,
    labels: Mapping[Path, float] | None = None,
) -> RankResult:
    """Rank ONNX ``files`` (:class:`RankResult`); ``proxy`` adds the NASWOT
    score (an onnxruntime run per file), ``probe_bytes`` caps each onnxruntime run.
    ``transfer`` loads (predictor, domain) of a model for sets mostly outside ``domain``
    (:func:`choose_model`): one model scores the whole set, and each row names it.
    ``workers`` > 1 reads many files in that many processes (:mod:`rank_read`). Files are
    read one at a time and only their compact records kept; a file over ``max_nodes``
    nodes or one the ONNX checker rejects is an error row. ``labels`` ({file: accuracy},
    :func:`~nas.predictors.labels.read_labels`) adds the labelled files not among
    ``files`` to the set and adapts the scores to the labels
    (:func:`~nas.predictors.fewshot.fit_few_shot`); rows say ``labelled``."""
    if labels is not None:
        files = with_labelled(files, labels)
    good: list[tuple[Path, GraphRecord, float]] = []
    errors: list[dict[str, str]] = []
    read = iter_read(
        files, workers, max_bytes=max_bytes, dims=dims, time_limit_s=time_limit_s,
        proxy=proxy, probe_bytes=probe_bytes, max_nodes=max_nodes,
    )  # fmt: skip
    shared: dict[str, str] = {}  # one string per distinct node text in the whole set
    for f, (record, nwot, error) in zip(files, read, strict=True):
        if record is None:
            errors.append({"file": str(f), "error": error})
        else:
            record.texts = [shared.setdefault(t, t) for t in record.texts]
            good.append((f, record, nwot))
    records = [r for _, r, _ in good]
    chosen = choose_model(records, domain, transfer)
    if chosen is not None:
        predictor, domain = chosen()
    acc = label_of([f for f, _, _ in good], labels or {})
    mode: dict[str, Any] = {"name": "zero-shot"}
    if labels is None:
        scores = predictor.score_records(records) if good else np.zeros(0)
    else:
        scores, mode = _few_shot(predictor, records, acc)
    rows = [
        _row(f, r, nwot, float(s), domain, getattr(predictor, "name", ""), a)
        for (f, r, nwot), s, a in zip(good, scores, acc, strict=True)
    ]
    rows.sort(key=lambda row: -row["score"])
    for k, row in enumerate(rows, 1):
        row["rank"] = k
    return RankResult(rows, errors, getattr(predictor, "name", ""), mode)


def _few_shot(
    predictor: Any, records: Sequence[GraphRecord], acc: Sequence[float | None]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The set's scores fitted to the labelled records' accuracies, and the mode."""
    from nas.predictors.fewshot import fit_few_shot, fit_records

    lab = [i for i, a in enumerate(acc) if a is not None]
    y = [float(a) for a in acc if a is not None]
    if not records:
        return np.zeros(0), fit_few_shot({}, np.zeros(0), lab, y).describe()
    fit = fit_records(predictor, records, lab, y)
    return fit.scores, fit.describe()


def _row(
    f: Path,
    r: GraphRecord,
    nwot: float,
    score: float,
    domain: Mapping[str, Any] | None,
    model: str,
    accuracy: float | None,
) -> dict[str, Any]:
    """One ranked file's row (``rank`` is set once the set is sorted)."""
    reason = ood_reason(r, domain)
    return {
        "file": str(f),
        "score": score,
        "params": r.params,
        "flops": r.flops,
        "depth": depth(len(r.texts), r.edges),
        "nwot": None if math.isnan(nwot) else round(nwot, 3),
        "ood": bool(reason),
        "ood_reason": reason,
        "model": model,
        "notes": list(r.notes),
        "labelled": accuracy is not None,
        "accuracy": accuracy,
    }
