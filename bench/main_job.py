"""The README's main job, measured: the default search on three tasks against its seeds,
the baselines and random search.

Runs ``nas search --space einspace --dataset TASK`` with its defaults on Language (the
default task), AddNIST and the shape-tile task, seeds 0, 1 and 2, and random search
(``--strategy rs``) with the same trials, each in its own process (so wall time and peak
RSS are per run; ``--jobs 2`` runs two at a time, one per core). Per task and seed it
prints the found network's test accuracy under the trial protocol, where it came from
(``seed mlp_cpu, unchanged`` or ``mlp_cpu + 3 mutations``), the best seed's, the converged
linear classifier's, the small CNN's, the best random-search network's, the standard error
of the found test accuracy, wall time and peak RSS; then checks the targets of issue 24.
``--busy`` also runs the first task's first seed again with two CPU-burning processes
beside it and compares its trials with the idle run's.

Each finished task and seed prints its row at once and is kept in ``OUT/TASK-SEED.json``;
a rerun with the same ``--out`` reuses the kept rows and runs only the missing ones
(``--fresh`` starts over), so a bench stopped half-way keeps what it measured.

    .venv/bin/python bench/main_job.py [--tasks unseen unseen:addnist unseen:cifartile]
        [--seeds 0 1 2] [--jobs 2] [--busy] [--out bench_runs/main_job] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TASKS = ("unseen", "unseen:addnist", "unseen:cifartile")


def one(task: str, seed: int, strategy: str, run_dir: Path, trials: int | None) -> dict:
    """Run one default search in this process; its numbers as a dict."""
    from nas.searches import Search, SearchConfig, baselines
    from nas.searches.store import open_run
    from nas.searches.verdict import verdict

    t0 = time.perf_counter()
    cfg = SearchConfig(dataset=task, seed=seed, strategy=strategy, trials=trials)
    job = Search(cfg, run_dir)
    result = job.run()
    wall = time.perf_counter() - t0
    seeds = job.seed_strings()
    rows = baselines.collect(run_dir, result.records, seeds)
    info, _ = open_run(run_dir)
    v = verdict(result.records, seeds, rows, (info.get("splits") or {}).get("test"))
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "task": task,
        "seed": seed,
        "strategy": strategy,
        "trials": job.config.trials,
        "found_test": v.test if v else None,
        "found_trial": v.found.number if v else None,
        "origin": v.origin if v else "",
        "unchanged_seed": bool(v and v.unchanged_seed),
        "se": v.se if v else None,
        "baselines": {b.name.split(" (")[0]: b.test for b in rows},
        "best_seed_name": next((b.name for b in rows if b.name.startswith("best seed")), ""),
        "capped": v.capped if v else 0,
        "statuses": [r.status for r in result.records],
        "wall_s": wall,
        "peak_rss_mb": rss / 1024,
    }


def _child(task: str, seed: int, strategy: str, run_dir: Path, trials: int | None) -> dict:
    cmd = [sys.executable, __file__, "--one", task, str(seed), strategy, str(run_dir)]
    cmd += ["--trials", str(trials)] if trials else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:  # the rows already kept stay; say which run failed and why
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"{strategy} search on {task} seed {seed} failed: {why}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_dir(out: Path, task: str, kind: str, seed: int) -> Path:
    """Where one search of the bench runs (``kind``: re, rs or busy)."""
    return out / f"{task.replace(':', '_')}-{kind}-{seed}"


def _pair(task: str, seed: int, out: Path) -> tuple[dict, dict]:
    """The default search (re) and random search with its trials, on the same baselines;
    kept in ``OUT/TASK-SEED.json`` and reused from there when a rerun finds it."""
    kept = out / f"{task.replace(':', '_')}-{seed}.json"
    if kept.exists():
        found, rand = json.loads(kept.read_text())
        print(f"{task} seed {seed}: kept from {kept}", flush=True)
        return found, rand
    re_dir, rs_dir = _run_dir(out, task, "re", seed), _run_dir(out, task, "rs", seed)
    for d in (re_dir, rs_dir):  # a run stopped half-way: its wall time would not be one run's
        shutil.rmtree(d, ignore_errors=True)
    found = _child(task, seed, "re", re_dir, None)
    rs_dir.mkdir(parents=True)
    shutil.copy(re_dir / "baselines.json", rs_dir / "baselines.json")  # the same baselines
    rand = _child(task, seed, "rs", rs_dir, found["trials"])
    kept.write_text(json.dumps([found, rand]))
    print(f"{task} seed {seed}: {report([(found, rand)])[2]}", flush=True)
    return found, rand


def trials_of(run_dir: Path) -> list[tuple[str, str, dict | None]]:
    """The trials of a finished run, as stored: (architecture, status, values)."""
    from nas.searches.store import open_run

    return [(r.arch, r.status, r.values) for r in open_run(run_dir)[1].records()]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _busy(task: str, seed: int, out: Path) -> dict:
    """The default search again with two CPU burners beside it; same trials as idle (the
    stores compared: architectures, statuses and values)?"""
    busy_dir = _run_dir(out, task, "busy", seed)
    shutil.rmtree(busy_dir, ignore_errors=True)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = _child(task, seed, "re", busy_dir, None)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    idle = trials_of(_run_dir(out, task, "re", seed))
    return {"wall_s": busy["wall_s"], "same_trials": trials_of(busy_dir) == idle}


def report(rows: list[tuple[dict, dict]]) -> list[str]:
    """The table and the target checks."""
    head = ["task", "seed", "found", "from", "best seed", "converged linear", "small CNN",
            "random search", "SE", "wall min", "RSS MB"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f, r in rows:
        b = f["baselines"]
        cells = [f["task"], str(f["seed"]), _pct(f["found_test"]), f["origin"],
                 f"{_pct(b.get('best seed'))} ({f['best_seed_name'][11:-1]})",
                 _pct(b.get("converged linear")), _pct(b.get("small CNN")),
                 _pct(r["found_test"]), _pct(f["se"]), f"{f['wall_s'] / 60:.1f}",
                 f"{f['peak_rss_mb']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    floor = all(
        (f["found_test"] or 0) >= (f["baselines"].get("best seed") or 0) - (f["se"] or 0)
        and (f["found_test"] or 0) >= (r["found_test"] or 0)
        for f, r in rows
    )
    lines.append("")
    lines.append(
        "found >= best seed - 1 SE and >= random search on every task and seed: "
        f"{'yes' if floor else 'no'}"
    )
    wins: dict[str, int] = {}
    for f, _ in rows:
        se, b = f["se"] or 0, f["baselines"]
        beat = (
            not f["unchanged_seed"]
            and (f["found_test"] or 0) - (b.get("best seed") or 0) >= 2 * se
            and (f["found_test"] or 0) - (b.get("converged linear") or 0) >= 2 * se
        )
        wins[f["task"]] = wins.get(f["task"], 0) + beat
    seeds = len({f["seed"] for f, _ in rows})
    need = min(2, seeds)
    tasks_ok = sum(n >= need for n in wins.values())
    lines.append(
        "beats the best seed and the converged linear classifier by >= 2 SE, not a seed "
        f"unchanged (seeds per task): {wins}; tasks with >= {need} of {seeds}: {tasks_ok} "
        f"(target: >= 2)"
    )
    lines.append(
        f"max wall {max(f['wall_s'] for f, _ in rows) / 60:.1f} min (target <= 10), "
        f"max peak RSS {max(f['peak_rss_mb'] for f, _ in rows):.0f} MB (target <= 2048); "
        f"trials stopped by the cap: {sum(f['capped'] for f, _ in rows)}"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="searches at a time (one per core)")
    ap.add_argument("--busy", action="store_true", help="rerun the first with 2 CPU burners")
    ap.add_argument("--out", type=Path, default=Path("bench_runs/main_job"))
    ap.add_argument("--fresh", action="store_true", help="drop the rows kept in --out")
    ap.add_argument("--one", nargs=4, metavar=("TASK", "SEED", "STRATEGY", "RUN_DIR"))
    ap.add_argument("--trials", type=int, help="random search: the default search's trials")
    a = ap.parse_args()
    if a.one:
        task, seed, strategy, run_dir = a.one
        print(json.dumps(one(task, int(seed), strategy, Path(run_dir), a.trials)))
        return
    from nas.data import get_dataset_info
    from nas.exceptions import NasError

    for task in a.tasks:  # a mistyped task: one line now, not a failed child run later
        try:
            get_dataset_info(task)
        except NasError as e:
            sys.exit(f"error: {e}")
    if a.fresh:
        shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True, exist_ok=True)
    todo = [(task, seed) for task in a.tasks for seed in a.seeds]
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda ts: _pair(*ts, a.out), todo))
    for f, r in rows:
        print(json.dumps({"re": f, "rs": r}))
    print()
    for line in report(rows):
        print(line)
    if a.busy:
        task, seed = todo[0]
        busy = _busy(task, seed, a.out)
        print(
            f"busy (2 CPU burners) {task} seed {seed}: wall {busy['wall_s'] / 60:.1f} min "
            f"(target <= 15), same trials as idle: {'yes' if busy['same_trials'] else 'no'}"
        )


if __name__ == "__main__":
    main()
