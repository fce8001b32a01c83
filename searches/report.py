"""``report.md`` and PNG plots for a search run, written from its run store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from nas.searches.store import DIRECTIONS, RunStore, TrialRecord


def pareto(records: list[TrialRecord], objectives: tuple[str, ...]) -> list[TrialRecord]:
    """Non-dominated successful trials for the given objectives."""
    ok = [r for r in records if r.ok and all(o in r.values for o in objectives)]
    sign = {o: (1 if DIRECTIONS[o] == "maximize" else -1) for o in objectives}

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        ge = all(sign[o] * a.values[o] >= sign[o] * b.values[o] for o in objectives)
        gt = any(sign[o] * a.values[o] > sign[o] * b.values[o] for o in objectives)
        return ge and gt

    front = [r for r in ok if not any(dominates(o, r) for o in ok)]
    return sorted(front, key=lambda r: -sign[objectives[0]] * r.values[objectives[0]])


def arch_tree(arch: str, space: Any) -> str:
    """The derivation as an indented text tree with output shapes and parameters."""
    from nas.analysis import analyse
    from nas.dsl import parse_arch
    from nas.dsl.vocab import create_node

    a = analyse(parse_arch(arch), space.input, record=True)
    lines = []
    for path, info in sorted(a.nodes.items()):
        op = create_node(info.node.op, **dict(info.node.params))
        shapes = " ".join(str(s) for s in info.out)
        lines.append(f"{'  ' * len(path)}{op!r} -> {shapes}  ({info.params:,} params)")
    return "\n".join(lines)


def plots(records: list[TrialRecord], objective: str, out_dir: Path) -> list[Path]:
    """Best-so-far against trials and time, and objective against parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.ok and objective in r.values]
    if not ok:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    better = max if DIRECTIONS[objective] == "maximize" else min
    best, xs, ys, times = None, [], [], []
    t0 = min(r.started or 0.0 for r in records)
    for r in sorted(records, key=lambda r: r.number):
        if r.ok and objective in r.values:
            best = r.values[objective] if best is None else better(best, r.values[objective])
        if best is not None:
            xs.append(r.number + 1)
            ys.append(best)
            times.append(((r.completed or r.started or t0) - t0) / 60)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].step(xs, ys, where="post")
    axes[0].set(xlabel="trials", ylabel=f"best {objective}")
    axes[1].step(times, ys, where="post")
    axes[1].set(xlabel="minutes", ylabel=f"best {objective}")
    fig.tight_layout()
    paths.append(out_dir / "best_so_far.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    with_params = [r for r in ok if r.params]
    if with_params:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.scatter(
            [r.params for r in with_params], [r.values[objective] for r in with_params], s=14
        )
        ax.set(xscale="log", xlabel="parameters", ylabel=objective)
        fig.tight_layout()
        paths.append(out_dir / f"{objective}_vs_params.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def baseline_section(
    run_dir: Path, records: list[TrialRecord], space: Any, final: dict[str, Any] | None
) -> list[str]:
    """The "Found vs baselines" table (trained searches), or nothing."""
    from nas.searches import baselines

    seeds = {name: str(node) for name, node in getattr(space, "seeds", {}).items()}
    rows = baselines.collect(run_dir, records, seeds)
    if not rows:
        return []
    found = baselines.found_row(records)
    lines = [
        "## Found vs baselines",
        "",
        "Every row is trained with the same protocol as a trial (valid picks the found "
        "network; test is its score on the held-out test split).",
        "",
        *baselines.table(found, rows),
    ]
    if final and isinstance(final.get("test"), dict) and "accuracy" in final["test"]:
        lines += [
            "",
            f"The found network retrained for {final.get('epochs')} epochs: test "
            f"{100 * final['test']['accuracy']:.1f}%.",
        ]
    return [*lines, ""]


def _skipped(run_dir: Path) -> dict[str, int]:
    path = run_dir / "skipped.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_report(
    run_dir: Path,
    store: RunStore,
    space: Any,
    info: dict[str, Any],
    final: dict[str, Any] | None = None,
    top: int = 10,
    stopped: str = "",
) -> Path:
    """Write ``report.md`` (and plots) for the run; returns its path.

    ``stopped`` says why the run ended short of its trial budget (empty when it did not).
    """
    records = store.records()
    obj = store.objectives[0]
    opts = info.get("options", {})
    lines = [f"# Search report: {opts.get('space')} on {opts.get('dataset')}", ""]
    lines.append(f"Command: `{info.get('command', '')}`  ")
    lines.append(
        f"Strategy: {opts.get('strategy')} {info.get('strategy_options', {})}, "
        f"seed {opts.get('seed')}, {len(records)} trials recorded."
    )
    if stopped:
        lines += ["", f"**Stopped early:** {stopped}."]
    lines.append("")
    lines += baseline_section(run_dir, records, space, final)
    counts = Counter(r.status for r in records)
    lines.append("Outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    skipped = _skipped(run_dir)
    if skipped:
        lines.append(
            "Skipped without a trial (drawn again): "
            + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        )
    lines.append("")
    best = store.best(top)
    lines += [
        f"## Top {len(best)} by {obj}",
        "",
        "| rank | trial | " + " | ".join(store.objectives) + " | params | MACs | arch |",
        "|---|---|" + "---|" * len(store.objectives) + "---|---|---|",
    ]
    for i, r in enumerate(best, 1):
        vals = " | ".join(f"{r.values.get(o, float('nan')):.4g}" for o in store.objectives)
        arch = r.arch if len(r.arch) <= 120 else r.arch[:117] + "..."
        lines.append(
            f"| {i} | {r.number} | {vals} | {r.params or 0:,} | {r.flops or 0:,} | `{arch}` |"
        )
    if len(store.objectives) > 1:
        front = pareto(records, store.objectives)
        lines += [
            "",
            f"## Pareto front ({', '.join(store.objectives)})",
            "",
            "| trial | " + " | ".join(store.objectives) + " |",
            "|---|" + "---|" * len(store.objectives),
        ]
        for r in front:
            lines.append(
                f"| {r.number} | "
                + " | ".join(f"{r.values[o]:.4g}" for o in store.objectives)
                + " |"
            )
    failures = [r for r in records if not r.ok]
    if failures:
        lines += ["", "## Failures", ""]
        for reason, n in Counter(f"{r.status}: {r.reason}"[:160] for r in failures).items():
            lines.append(f"- {n} x {reason}")
    if final:
        lines += [
            "",
            "## Final retraining of the best architecture",
            "",
            *_final_lines(final),
        ]
    if best:
        lines += [
            "",
            "## The best architecture",
            "",
            "```",
            best[0].arch,
            "```",
            "",
            "```",
            arch_tree(best[0].arch, space),
            "```",
        ]
    pngs = plots(records, obj, run_dir / "plots")
    if pngs:
        lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in pngs]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def readable(v: Any) -> str:
    """A result value for people: floats to 4 significant digits, counts with thousands
    separators, anything else as its string (the exact values stay in the JSON files)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _final_lines(final: dict[str, Any]) -> list[str]:
    """The final retraining as Markdown for people: a table of each split's metrics, then
    the other fields (final.json keeps the exact values)."""
    splits = {k: v for k, v in final.items() if isinstance(v, dict)}
    names = list(dict.fromkeys(m for v in splits.values() for m in v))
    lines = []
    if splits:
        lines += ["| split | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for split, v in splits.items():
            lines.append(
                f"| {split} | " + " | ".join(readable(v.get(m, "-")) for m in names) + " |"
            )
        lines.append("")
    rest = {k: v for k, v in final.items() if k not in splits and v not in ("", None)}
    lines += [f"- {k}: {readable(v)}" for k, v in rest.items()]
    return lines
