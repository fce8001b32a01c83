"""``report.md`` and PNG plots for a search run, written from its run store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from nas.searches.runner import arch_digest
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


def plots(
    records: list[TrialRecord],
    objective: str,
    out_dir: Path,
    lines: dict[str, float] | None = None,
    seeds: set[str] | frozenset[str] = frozenset(),
) -> list[Path]:
    """Every trial and the best so far against trials and time, and the objective against
    parameters; ``lines`` (name: value, e.g. the baselines' valid accuracy) are drawn as
    horizontal lines and trials whose architecture is in ``seeds`` are marked."""
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    seeded = [r for r in ok if r.arch in seeds]
    others = [r for r in ok if r.arch not in seeds]
    axes[0].scatter([r.number + 1 for r in others], [r.values[objective] for r in others],
                    s=12, color="0.6", label="trial")  # fmt: skip
    if seeded:
        axes[0].scatter([r.number + 1 for r in seeded], [r.values[objective] for r in seeded],
                        s=40, marker="*", color="tab:orange", label="seed")  # fmt: skip
    axes[0].step(xs, ys, where="post", color="tab:blue", label="best so far")
    axes[0].set(xlabel="trials", ylabel=objective)
    axes[1].step(times, ys, where="post", color="tab:blue", label="best so far")
    axes[1].set(xlabel="minutes", ylabel=f"best {objective}")
    for ax in axes:
        _baseline_lines(ax, lines or {})
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "best_so_far.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    with_params = [r for r in ok if r.params]
    if with_params:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        plain = [r for r in with_params if r.arch not in seeds]
        ax.scatter([r.params for r in plain], [r.values[objective] for r in plain], s=14,
                   color="0.5", label="trial")  # fmt: skip
        marked = [r for r in with_params if r.arch in seeds]
        if marked:
            ax.scatter([r.params for r in marked], [r.values[objective] for r in marked], s=50,
                       marker="*", color="tab:orange", label="seed")  # fmt: skip
        ax.set(xscale="log", xlabel="parameters", ylabel=objective)
        _baseline_lines(ax, lines or {})
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        paths.append(out_dir / f"{objective}_vs_params.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def _baseline_lines(ax: Any, lines: dict[str, float]) -> None:
    """Horizontal dashed lines, one per baseline, labelled at the right edge."""
    palette = ("tab:green", "tab:red", "tab:purple", "tab:orange", "tab:cyan", "tab:olive")
    for i, (name, value) in enumerate(lines.items()):
        seed = name.startswith("best seed")
        color = "tab:orange" if seed else palette[i % len(palette)]
        ax.axhline(value, ls=":" if seed else "--", lw=1.1, color=color, label=name)


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
    verdict: Any = None,
) -> Path:
    """Write ``report.md`` (and plots) for the run; returns its path.

    ``stopped`` says why the run ended short of its trial budget (empty when it did not);
    ``verdict`` (:class:`~nas.searches.verdict.Verdict`) what was found, in words.
    """
    records = store.records()
    obj = store.objectives[0]
    opts = info.get("options", {})
    seeds = {str(node): name for name, node in getattr(space, "seeds", {}).items()}
    lines = [f"# Search report: {opts.get('space')} on {opts.get('dataset')}", ""]
    lines.append(f"Command: `{info.get('command', '')}`  ")
    lines.append(
        f"Strategy: {opts.get('strategy')} {info.get('strategy_options', {})}, "
        f"seed {opts.get('seed')}, {len(records)} trials recorded.  "
    )
    lines.append(_setting_line(info))
    if stopped:
        lines += ["", f"**Stopped early:** {stopped}."]
    lines.append("")
    if verdict is not None:
        lines += ["## Verdict", "", *[f"- {line}" for line in verdict.lines()], ""]
    lines += baseline_section(run_dir, records, space, final)
    counts = Counter(r.status for r in records)
    lines.append("Outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    capped = sorted({seeds[r.arch] for r in records if r.status == "timeout" and r.arch in seeds})
    if counts.get("timeout"):
        lines.append(
            f"Stopped by the per-trial cap (--trial-time {opts.get('trial_time')} CPU s): "
            f"{counts['timeout']} trials; seeds among them: {', '.join(capped) or 'none'}."
        )
    skipped = _skipped(run_dir)
    if skipped:
        lines.append(
            "Skipped without a trial (drawn again): "
            + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        )
    lines.append("")
    best = store.best(top)
    number_of = {arch_digest(r.arch): r.number for r in sorted(records, key=lambda r: -r.number)}
    lines += [
        f"## Top {len(best)} by {obj}",
        "",
        "| rank | trial | " + " | ".join(store.objectives) + " | params | MACs | from | arch |",
        "|---|---|" + "---|" * len(store.objectives) + "---|---|---|---|",
    ]
    for i, r in enumerate(best, 1):
        vals = " | ".join(f"{r.values.get(o, float('nan')):.4g}" for o in store.objectives)
        arch = r.arch if len(r.arch) <= 120 else r.arch[:117] + "..."
        src = _origin_cell(r, seeds, number_of)
        lines.append(
            f"| {i} | {r.number} | {vals} | {r.params or 0:,} | {r.flops or 0:,} | {src} "
            f"| `{arch}` |"
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
    pngs = plots(records, obj, run_dir / "plots", _plot_lines(run_dir, records, space), set(seeds))
    if pngs:
        lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in pngs]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _setting_line(info: dict[str, Any]) -> str:
    """Input shape, classes and split sizes of a run (what its architectures were for)."""
    inp, splits = info.get("input") or {}, info.get("splits") or {}
    parts = []
    if inp.get("shape"):
        shape = "x".join(str(d) for d in inp["shape"])
        parts.append(f"Input {shape} ({inp.get('mode', 'im')}), {inp.get('num_classes')} classes")
    if splits:
        parts.append("train / valid / test " + " / ".join(f"{n:,}" for n in splits.values()))
    return "; ".join(parts) + "." if parts else ""


def _origin_cell(r: TrialRecord, seeds: dict[str, str], number_of: dict[str, int]) -> str:
    """Where a trial came from: **seed NAME**, OP of trial N, or a grammar draw."""
    if r.arch in seeds:
        return f"**seed {seeds[r.arch]}**"
    op, parent = r.origin.get("op", ""), r.origin.get("parent")
    if parent is not None:
        n = number_of.get(parent)
        return f"{op} of trial {n}" if n is not None else op
    return "draw" if op in ("", "draw") else op


def _plot_lines(run_dir: Path, records: list[TrialRecord], space: Any) -> dict[str, float]:
    """The baselines' valid accuracy, by name, for the plots (trained searches)."""
    from nas.searches import baselines

    seeds = {name: str(node) for name, node in getattr(space, "seeds", {}).items()}
    rows = baselines.collect(run_dir, records, seeds)
    return {b.name: b.valid for b in rows if b.valid is not None and b.name != "chance"}


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
