"""Benchmark: TopK SAE training throughput against the hardware limit, sae-lens and sparsify, in one process.

For each width R (d_sae = R * 576, SmolLM2-135M's d_model; k 32, fp32, Adam) it times a training step of
``rsae_utils.sae.topk.TopKTrainer`` (fp32, and "fast_bf16": ``matmul_dtype="bfloat16"``, the top-k chosen from a
bf16 encoder product, all else fp32; the bf16 / fp32 ratio is printed per width), sae-lens's ``SAETrainer.step`` on
a ``TopKTrainingSAE`` (``training_forward_pass`` + backward + grad clipping + Adam, as ``fit`` runs it) and, when
``eai-sparsify`` is installed, sparsify's ``SparseCoder`` loop (forward, FVU backward, decoder-parallel gradient
removal, Adam, unit rows). The limit is one dense encoder product per token: peak / (2 d_in d_sae) tokens/s, the
peak being the best fp32 product measured in the run (a 4096^3 one and the encoder product itself, next to each
width's trainers). Trainers are timed in alternating rounds and each keeps its best round, so a burst of load from
other jobs hurts all of them alike; the ratios in one run are what to compare across machines.

    python benchmarks/bench_topk_train.py            # R = 4, 16, 64; batch 4096; writes figures/bench_topk_train.json
    python benchmarks/bench_topk_train.py --quick    # R = 1, batch 256, one step: seconds; build/..._quick.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

# OpenMP threads that spin while another job holds the other core make every small parallel op wait for a time
# slice (measured here with one other busy process: a 131k-element sort 7 ms -> 190 ms, the sparse gradient
# product 25 -> 175 ms); passive waiting leaves the dense products as fast. It must be set before torch loads;
# OMP_WAIT_POLICY=ACTIVE in the environment measures the default instead. Every trainer runs under the same policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _quick import ROOT, quick_json, write_json  # noqa: E402

D_IN, K = 576, 32


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], object], device: str, reps: int) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / reps


def matmul_peak(device: str, reps: int, n: int = 4096) -> float:
    """GFLOP/s of an n^3 fp32 product (4096: the usual peak figure)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)
    return 2 * n**3 / min(seconds_per_call(lambda: torch.mm(a, b, out=c), device, reps) for _ in range(2)) / 1e9


def encoder_gflops(d_sae: int, batch: int, device: str, reps: int) -> float:
    """GFLOP/s of the encoder product alone (batch x d_in) @ (d_in x d_sae), into a reused buffer."""
    x, w = torch.randn(batch, D_IN, device=device), torch.randn(d_sae, D_IN, device=device)
    b, out = torch.zeros(d_sae, device=device), torch.empty(batch, d_sae, device=device)
    torch.addmm(b, x, w.t(), out=out)
    s = min(seconds_per_call(lambda: torch.addmm(b, x, w.t(), out=out), device, reps) for _ in range(2))
    return 2 * batch * D_IN * d_sae / s / 1e9


def make_fast(d_sae: int, device: str, matmul_dtype: str = "float32"):
    from rsae_utils.sae.topk import TopKTrainer

    trainer = TopKTrainer(D_IN, d_sae, K, device=device, seed=0, matmul_dtype=matmul_dtype)
    return trainer.step


def make_sae_lens(d_sae: int, batch: int, device: str):
    from sae_lens.training.sae_trainer import SAETrainer

    from rsae_utils.sae.saelens import make_training_sae, trainer_config
    from rsae_utils.sae.spec import SAESpec, paper_lr

    spec = SAESpec(
        expansion=d_sae // D_IN,
        k=K,
        batch_size=batch,
        n_tokens=batch * 1000,
        lr=paper_lr(d_sae),
        normalize_activations="none",
        dead_feature_window=1000,
    )
    torch.manual_seed(0)
    sae = make_training_sae(spec, D_IN).to(device)
    trainer = SAETrainer(cfg=trainer_config(spec, D_IN, 1, device=device), sae=sae, data_provider=iter(()))
    return trainer.step


def make_sparsify(d_sae: int, device: str):
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(0)
    sc = SparseCoder(D_IN, SparseCoderConfig(num_latents=d_sae, k=K), device=device)
    opt = torch.optim.Adam(sc.parameters(), lr=2e-4 / (d_sae / 2**14) ** 0.5)
    since = torch.zeros(d_sae, dtype=torch.long, device=device)
    fired = torch.zeros(d_sae, dtype=torch.bool, device=device)

    def step(x: torch.Tensor) -> None:  # sparsify's Trainer.fit body for one SAE, FVU loss, no AuxK (its default)
        sc.set_decoder_norm_to_unit_norm()
        out = sc(x)
        out.fvu.backward()
        fired[out.latent_indices.flatten()] = True
        sc.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        since.add_(x.shape[0])
        since[fired] = 0
        fired.zero_()

    return step


def bench_width(R: int, batch: int, device: str, steps: int, rounds: int, trainers: list[str]) -> dict:
    d_sae = R * D_IN
    gen = torch.Generator().manual_seed(R)
    # Distinct batches with a mean and unequal variances (like residual activations), so the top-k sets vary.
    scale = torch.rand(D_IN, generator=gen) * 2 + 0.1
    xs = [(torch.randn(batch, D_IN, generator=gen) * scale + 0.5).to(device) for _ in range(steps)]
    makers = {
        "fast": lambda: make_fast(d_sae, device),
        "fast_bf16": lambda: make_fast(d_sae, device, "bfloat16"),
        "sae_lens": lambda: make_sae_lens(d_sae, batch, device),
        "sparsify": lambda: make_sparsify(d_sae, device),
    }
    steps_fn = {name: makers[name]() for name in trainers}
    for fn in steps_fn.values():  # warm-up: allocator, kernels, lazy inits
        fn(xs[0])
    best = {name: float("inf") for name in trainers}
    for _ in range(rounds):
        for name, fn in steps_fn.items():
            sync(device)
            t0 = time.perf_counter()
            for x in xs:
                fn(x)
            sync(device)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(xs))
    del steps_fn
    return {name: batch / s for name, s in best.items()}


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratios", default="4,16,64", help="expansion factors R (d_sae = R * 576)")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="R = 1, batch 256, 1 step, 1 round, a 256^3 peak product "
        "(a smoke run in seconds); writes build/bench_topk_train_quick.json unless --json is given",
    )
    ap.add_argument("--trainers", default="fast,fast_bf16,sae_lens,sparsify")
    ap.add_argument("--devices", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's, all cores); 1 "
        "compares the trainers' work without OpenMP waits when other jobs share the cores",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default figures/bench_topk_train.json (--quick: build/bench_topk_train_quick.json)",
    )
    args = ap.parse_args()
    from rsae_utils.sae.topk import bf16_is_fast

    if args.threads:
        torch.set_num_threads(args.threads)
    peak_n = 4096
    if args.quick:  # the committed figures/bench_topk_train.json is never overwritten by a smoke run
        args.ratios, args.batch, args.steps, args.rounds, peak_n = "1", 256, 1, 1, 256
        args.json = args.json or quick_json("bench_topk_train")
    args.json = args.json or ROOT / "figures" / "bench_topk_train.json"
    ratios = [int(r) for r in args.ratios.split(",")]
    trainers = [t for t in args.trainers.split(",") if t != "sparsify" or _has("sparsify")]
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    out: dict = {
        "quick": args.quick,
        "peak_matmul_n": peak_n,
        "d_in": D_IN,
        "k": K,
        "dtype": "float32",
        "batch": args.batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_before": os.getloadavg(),
        "versions": _versions(),
        "results": [],
    }
    for device in devices:
        reps = (3 if device == "cpu" else 20) if not args.quick else 1
        if device.startswith("cuda"):
            out["gpu"] = torch.cuda.get_device_name()
        measured = []
        for R in ratios:  # products measured next to each width's trainers: the load of other jobs varies
            square, enc = matmul_peak(device, reps, peak_n), encoder_gflops(R * D_IN, args.batch, device, reps)
            measured.append((R, square, enc, bench_width(R, args.batch, device, args.steps, args.rounds, trainers)))
            print(f"{device} R={R}: " + ", ".join(f"{n} {v:.0f} tok/s" for n, v in measured[-1][3].items()), flush=True)
        peak = max(max(square, enc) for _, square, enc, _ in measured)  # the best product seen in this run
        for R, square, enc, tok_s in measured:
            d_sae = R * D_IN
            limit = peak * 1e9 / (2 * D_IN * d_sae)
            row = {
                "device": device,
                "R": R,
                "d_sae": d_sae,
                "peak_gflops": round(peak, 1),
                "matmul_4096_gflops": round(square, 1),
                "encoder_gflops": round(enc, 1),
                "limit_tok_s": round(limit, 1),
                "bf16_is_fast": bf16_is_fast(device),
            }
            for name, v in tok_s.items():
                row[f"{name}_tok_s"] = round(v, 1)
                row[f"{name}_frac_of_limit"] = round(v / limit, 3)
            if "sae_lens" in tok_s:
                for name, v in tok_s.items():
                    if name != "sae_lens":
                        row[f"{name}_vs_sae_lens"] = round(v / tok_s["sae_lens"], 2)
            if "fast" in tok_s and "fast_bf16" in tok_s:
                row["bf16_vs_fp32"] = round(tok_s["fast_bf16"] / tok_s["fast"], 2)
            out["results"].append(row)
            print(_line(row, trainers), flush=True)
    out["load_after"] = os.getloadavg()
    print(
        f"load average before {out['load_before']}, after {out['load_after']}; threads {out['threads']}, "
        f"OMP_WAIT_POLICY {out['omp_wait_policy']}"
    )
    write_json(args.json, out)
    print(f"wrote {args.json}")
    return out


def _line(row: dict, trainers: list[str]) -> str:
    head = (
        f"{row['device']:>4} R={row['R']:<3} d_sae={row['d_sae']:<6} peak {row['peak_gflops']:6.1f} GF/s "
        f"(enc {row['encoder_gflops']:6.1f}) limit {row['limit_tok_s']:9.0f} tok/s |"
    )
    cells = []
    for name in trainers:
        cell = f" {name} {row[f'{name}_tok_s']:8.0f} tok/s ({100 * row[f'{name}_frac_of_limit']:4.1f}%"
        cell += f", x{row[f'{name}_vs_sae_lens']:.2f} sae-lens)" if f"{name}_vs_sae_lens" in row else ")"
        cells.append(cell)
    if "bf16_vs_fp32" in row:
        cells.append(f" fast bf16/fp32 x{row['bf16_vs_fp32']:.2f} (bf16 native: {row['bf16_is_fast']})")
    return head + " |".join(cells)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "sae-lens", "eai-sparsify"):
        with contextlib.suppress(PackageNotFoundError):
            found[dist] = version(dist)
    return found


if __name__ == "__main__":
    main()
