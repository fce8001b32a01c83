"""Each zoo family's size, speed and task metric on this CPU.

Usage: python bench/zoo.py [--families moe,rrn] [--no-train] [--repeats 20]

For each family's default config on its default task: parameters, multiply-accumulates
per sample (torch's FLOP counter on a batch of 1, halved), CPU forward latency at batch 1
and 64 in torch and in onnxruntime (the exported file, one thread each, median of
``--repeats``), and the task metric after the family's default short training beside its
trivial baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_family(name: str, repeats: int, train: bool) -> dict:
    """One family's row."""
    import torch
    from nas.zoo import count_macs, count_params, export_config, get_family, train_config

    from nas.export import ort_session

    fam = get_family(name)
    cfg = fam.config()
    data = fam.make_data(fam.task().name, size="small", seed=0)
    torch.manual_seed(0)
    raw = fam.build(cfg, data).eval()
    model = fam.export_module(raw, cfg).eval()  # what is deployed (e.g. the slim network)
    row = {"family": name, "params": count_params(model)}
    row["macs"] = count_macs(fam, raw, cfg, data)
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = export_config(fam, Path(tmp) / "m.onnx", cfg, model=raw, data=data)
        sess = ort_session(path)
        for b in (1, 64):
            x = fam.example_inputs(cfg, data, batch=b)
            with torch.no_grad():
                row[f"torch_b{b}_ms"] = _median_ms(lambda x=x: model(*x), repeats)
            feed = {n: t.numpy() for n, t in zip(fam.input_names, x, strict=True)}
            try:
                row[f"ort_b{b}_ms"] = _median_ms(lambda f=feed: sess.run(None, f), repeats)
            except Exception as e:  # a fixed-batch export cannot take batch 64
                row[f"ort_b{b}_ms"] = None
                row["note"] = f"ort batch {b}: {type(e).__name__}"
    if train:
        info = fam.task()
        t0 = time.perf_counter()
        _, data, res = train_config(fam, cfg, info.name, seed=0)
        row["metric"] = info.metric
        row["test"] = res.test.get(info.metric)
        row["baseline"] = fam.baseline(data).get(info.metric)
        row["train_s"] = time.perf_counter() - t0
    return row


def main(argv: list[str] | None = None) -> None:
    import torch
    from nas.zoo import list_families

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=None, help="comma-separated (default: all)")
    p.add_argument("--no-train", action="store_true", help="skip the default training")
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    names = a.families.split(",") if a.families else list_families()
    head = f"{'family':10s}{'params':>10s}{'MACs':>12s}"
    head += "".join(f"{k:>10s}" for k in ("torch b1", "ort b1", "torch b64", "ort b64"))
    print(head + "   metric (test vs trivial baseline), training time")
    for name in names:
        r = bench_family(name, a.repeats, not a.no_train)

        def ms(key: str, r: dict = r) -> str:
            return f"{r[key]:8.2f}ms" if r.get(key) is not None else f"{'-':>10s}"

        line = f"{name:10s}{r['params']:>10,}{r['macs']:>12,}"
        line += ms("torch_b1_ms") + ms("ort_b1_ms") + ms("torch_b64_ms") + ms("ort_b64_ms")
        if "metric" in r:
            line += (
                f"   {r['metric']} {r['test']:.4g} vs {r['baseline']:.4g}, {r['train_s']:.0f} s"
            )
        if r.get("note"):
            line += f" ({r['note']})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
