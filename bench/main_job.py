"""The README's main job, measured: the default search against its baselines and random search.

Runs ``nas search --space einspace --dataset unseen`` (the defaults) with seeds 0, 1 and 2,
and random search (``--strategy rs``) with the same trials and time budget, each in its own
process (so wall time and peak RSS are per run), then prints per seed the found network's
test accuracy (its trial, the protocol every baseline is trained with; and after the final
retrain), each baseline's, the best random-search network's, the wall time and the peak
RSS, and checks the issue 14 targets.

    .venv/bin/python bench/main_job.py [--seeds 0 1 2] [--out bench_runs/main_job]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def one(seed: int, strategy: str, run_dir: Path, **overrides: Any) -> dict:
    """Run one default search in this process; the numbers as a dict."""
    from nas.searches import Search, SearchConfig, baselines

    t0 = time.perf_counter()
    job = Search(SearchConfig(seed=seed, strategy=strategy, **overrides), run_dir)
    result = job.run()
    wall = time.perf_counter() - t0
    rows = baselines.collect(run_dir, result.records, job.seed_strings())
    found = baselines.found_row(result.records)
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    final = result.final or {}
    return {
        "seed": seed,
        "strategy": strategy,
        "found_test": found.test if found else None,
        "found_valid": found.valid if found else None,
        "final_test": (final.get("test") or {}).get("accuracy"),
        "baselines": {b.name: b.test for b in rows},
        "trials": sum(r.ok for r in result.records),
        "skipped": json.loads((run_dir / "skipped.json").read_text()),
        "wall_s": wall,
        "peak_rss_mb": rss / 1024,
    }


def _child(seed: int, strategy: str, run_dir: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--one", str(seed), strategy, str(run_dir), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("bench_runs/main_job"))
    ap.add_argument("--one", nargs=3, metavar=("SEED", "STRATEGY", "RUN_DIR"))
    ap.add_argument("--trials", type=int, help="override the default (smoke runs only)")
    ap.add_argument("--time-budget", type=float, help="override the default (smoke runs only)")
    a = ap.parse_args()
    overrides = {k: v for k, v in (("trials", a.trials), ("time_budget", a.time_budget)) if v}
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()]
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1], Path(a.one[2]), **overrides)))
        return
    shutil.rmtree(a.out, ignore_errors=True)
    rows = []
    for seed in a.seeds:
        re_dir, rs_dir = a.out / f"re-{seed}", a.out / f"rs-{seed}"
        found = _child(seed, "re", re_dir, extra)
        rs_dir.mkdir(parents=True)
        shutil.copy(re_dir / "baselines.json", rs_dir / "baselines.json")  # same baselines
        rand = _child(seed, "rs", rs_dir, extra)
        rows.append((found, rand))
        print(json.dumps({"re": found, "rs": rand}), flush=True)
    names = list(rows[0][0]["baselines"])
    head = ["seed", "found", "final", *names, "random search", "wall min", "RSS MB"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for f, r in rows:
        cells = [str(f["seed"]), _pct(f["found_test"]), _pct(f["final_test"])]
        cells += [_pct(f["baselines"].get(n)) for n in names]
        cells += [_pct(r["found_test"]), f"{f['wall_s'] / 60:.1f}", f"{f['peak_rss_mb']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    cnn = [f["baselines"].get("small CNN") for f, _ in rows]
    found = [f["found_test"] for f, _ in rows]
    linear = ("linear probe", "converged linear")
    beats = all(
        f["found_test"] > max(*(f["baselines"].get(n) or 0 for n in linear), r["found_test"] or 0)
        for f, r in rows
    )
    reach = sum(x >= c for x, c in zip(found, cnn, strict=True) if None not in (x, c))
    gap = 100 * (sum(cnn) - sum(found)) / len(rows) if None not in cnn + found else None
    print(
        f"\nfound beats the linear probe (as trained and converged) and random search on every "
        f"seed: {beats}; "
        f"reaches the CNN on {reach}/{len(rows)}; mean gap to the CNN "
        f"{'-' if gap is None else f'{gap:.1f}'} pts; "
        f"max wall {max(f['wall_s'] for f, _ in rows) / 60:.1f} min, "
        f"max peak RSS {max(f['peak_rss_mb'] for f, _ in rows):.0f} MB"
    )


if __name__ == "__main__":
    main()
