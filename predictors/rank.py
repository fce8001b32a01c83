"""``nas rank``'s work as a library call: score ONNX files, explain each score, one error each.

Every file gives either a row (score, params, FLOPs, depth, the NASWOT proxy and an
out-of-distribution flag) or one error row; nothing a file does stops the others.

Out of distribution: a file is flagged when more than :data:`OOD_UNSEEN_SHARE` of its nodes
have op types the predictor was not trained on, or its parameters lie more than a factor
10 outside the training range (``domain.json`` beside the weights). Unseen ops are still
scored, through the embedding of their normalised node text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.predictors.bench import GraphRecord, file_record
from nas.predictors.onnxfile import DEFAULT_MAX_BYTES, as_file_error, time_limit
from nas.predictors.signals import depth, nwot_file

from nas.exceptions import NasError

OOD_UNSEEN_SHARE = 0.05


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
    ops = [t.split(" ", 1)[0] for t in record.texts]
    seen = set(domain.get("ops", ()))
    unseen = sorted({o for o in ops if o not in seen})
    share = sum(o not in seen for o in ops) / max(1, len(ops))
    if share > OOD_UNSEEN_SHARE:
        reasons.append(f"{share:.0%} of nodes of unseen ops ({', '.join(unseen[:4])})")
    lo, hi = domain.get("params", (0, math.inf))
    if record.params < lo / 10 or record.params > hi * 10:
        reasons.append(f"{record.params:,} params, trained on {lo:,}-{hi:,}")
    return "; ".join(reasons)


def rank_files(
    files: Sequence[Path],
    predictor: Any,
    domain: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dims: Mapping[str, int] | None = None,
    time_limit_s: float | None = None,
    proxy: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(ranked rows, best first; error rows) for ONNX ``files``."""
    good: list[tuple[Path, GraphRecord, float]] = []
    errors: list[dict[str, str]] = []
    for f in files:
        try:
            with time_limit(time_limit_s, f):
                record = as_file_error(f, lambda f=f: file_record(f, max_bytes, dims))
                nwot = nwot_file(f, max_bytes) if proxy else float("nan")
            good.append((f, record, nwot))
        except NasError as e:
            errors.append({"file": str(f), "error": str(e).removeprefix(f"{f}: ")})
    scores = predictor.score_records([r for _, r, _ in good]) if good else []
    rows = []
    for (f, r, nwot), s in zip(good, scores, strict=True):
        reason = ood_reason(r, domain)
        rows.append(
            {
                "file": str(f),
                "score": float(s),
                "params": r.params,
                "flops": r.flops,
                "depth": depth(len(r.texts), r.edges),
                "nwot": None if math.isnan(nwot) else round(nwot, 3),
                "ood": bool(reason),
                "ood_reason": reason,
            }
        )
    rows.sort(key=lambda row: -row["score"])
    for k, row in enumerate(rows, 1):
        row["rank"] = k
    return rows, errors
