"""Benchmark: today's activation harvest against the lean one, alternating rounds in one process.

Each round harvests the same windows into a fresh folder three ways and reports tokens/s:

* ``hooked``: the previous code path (transformer-lens ``run_with_hooks``, stop after the deepest layer, shards
  written and hashed after each forward) — ``harvest`` on a copy of the model that ``lean_ok`` refuses because
  of a no-op forward hook on an unused hook point, which is exactly how it ran before;
* ``lean-float32``: notebook 03's default now (``rsae_utils.sae.fastfwd``, background shard writing);
* ``lean-bfloat16``: the same with bfloat16 matrix products (``harvest_dtype='bfloat16'``), plus its relative
  error against the float32 cache per layer.

Rounds alternate so that load from other processes falls on every path alike; the ratio is the median of the
per-round ratios.

    python benchmarks/bench_harvest.py                        # SmolLM2-135M, layers 0,4,9,14, 128 windows x 128
    python benchmarks/bench_harvest.py --model tiny-random --layers 0,1,3 --windows 64
    python benchmarks/bench_harvest.py --quick                # tiny-random, 16 windows of 32, one round (seconds)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _quick import quick_corpus, write_json


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--variant", default="trained")
    ap.add_argument("--layers", default="0,4,9,14")
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--windows", type=int, default=128, help="windows harvested per round (2 shards of 64)")
    ap.add_argument("--batch", type=int, default=8, help="windows per forward (notebook 03's harvest_batch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--corpus", default="site-packages", help="corpus source (subject.corpus: site-packages, dir:...)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny-random, layers 0,1,3, 16 windows of 32 tokens, one "
        "round, a small corpus of this package's sources (a smoke run in seconds)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    tmp_corpus = tempfile.TemporaryDirectory() if args.quick else None
    if tmp_corpus is not None:
        args.model, args.layers, args.ctx, args.windows, args.rounds = "tiny-random", "0,1,3", 32, 16, 1
        args.corpus = quick_corpus(Path(tmp_corpus.name))
    if args.threads:
        torch.set_num_threads(args.threads)

    from rsae_utils.sae.harvest import harvest, harvest_forward
    from rsae_utils.subject.corpus import load_corpus
    from rsae_utils.subject.models import load_model
    from rsae_utils.subject.rerandomize import make_variant
    from rsae_utils.subject.windows import tokenize_windows

    layers = [int(x) for x in args.layers.split(",")]
    loaded = load_model(args.model)
    model, _ = make_variant(loaded, args.variant, seed=42)
    hooked, _ = make_variant(loaded, args.variant, seed=42)
    hooked.blocks[0].hook_resid_pre.add_hook(lambda act, hook: None, is_permanent=True)  # lean_ok refuses: old path
    corpus = load_corpus(args.corpus)
    tokens = tokenize_windows(corpus, loaded.tokenizer, args.ctx, args.windows, 1, 0)["train"][: args.windows]
    meta = {"model": args.model, "variant": args.variant, "seed": 42, "corpus_sha256": corpus.sha256}
    paths = {"hooked": (hooked, "float32"), "lean-float32": (model, "float32"), "lean-bfloat16": (model, "bfloat16")}
    assert harvest_forward(hooked) == "transformer-lens" and harvest_forward(model) == "lean-float32"
    n_tok = tokens.numel()
    rates: dict[str, list[float]] = {k: [] for k in paths}
    errors: dict[int, float] = {}
    with torch.no_grad():
        model(tokens[:2], stop_at_layer=1)  # warm-up (allocator, kernels)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            caches = {}
            for name, (m, hd) in paths.items():
                t0 = time.perf_counter()
                caches[name] = harvest(
                    m, {"train": tokens}, layers, Path(tmp) / name, meta, batch_size=args.batch, harvest_dtype=hd
                )
                rates[name].append(n_tok / (time.perf_counter() - t0))
            for layer in layers:
                ref = caches["hooked"].acts(layer)
                errors[layer] = float((caches["lean-bfloat16"].acts(layer) - ref).norm() / ref.norm())
                errors.setdefault(-1 - layer, float((caches["lean-float32"].acts(layer) - ref).norm() / ref.norm()))
    base = rates["hooked"]
    out: dict = {
        "quick": args.quick,
        "model": args.model,
        "variant": args.variant,
        "layers": layers,
        "ctx": args.ctx,
        "windows": args.windows,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "paths": {},
    }
    print(
        f"{args.model} {args.variant}, layers {layers}, {n_tok} tokens/round, batch {args.batch}, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds"
    )
    print(f"{'path':15s} {'median tok/s':>12s} {'x hooked':>9s}")
    for name, r in rates.items():
        ratio = statistics.median(a / b for a, b in zip(r, base))
        out["paths"][name] = {
            "tok_s": [round(x, 1) for x in r],
            "median_tok_s": round(statistics.median(r), 1),
            "ratio_vs_hooked": round(ratio, 3),
        }
        print(f"{name:15s} {statistics.median(r):12.0f} {ratio:9.2f}")
    out["rel_err_vs_hooked"] = {
        "lean-float32": {layer: errors[-1 - layer] for layer in layers},
        "lean-bfloat16": {layer: errors[layer] for layer in layers},
    }
    for name, errs in out["rel_err_vs_hooked"].items():
        print(
            f"relative error ||new - hooked|| / ||hooked||, {name}: "
            + ", ".join(f"L{k} {v:.1e}" for k, v in errs.items())
        )
    if args.json:
        write_json(args.json, out)
    if tmp_corpus is not None:
        tmp_corpus.cleanup()
    return out


if __name__ == "__main__":
    main()
