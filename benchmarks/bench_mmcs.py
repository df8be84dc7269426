"""Benchmark the batched MMCS-sweep trainer against training the same SAEs one at a time.

    .venv/bin/python benchmarks/bench_mmcs.py            # the fixed slice below (~1-3 min on 2 cores)
    .venv/bin/python benchmarks/bench_mmcs.py --full     # also time the whole default sweep of notebook 02
    .venv/bin/python benchmarks/bench_mmcs.py --quick    # the smoke profile's slice, 5 steps (seconds)

Slice (``--profile default``): notebook 02's default profile restricted to the raw condition, seed 0, the
1024-latent dictionary and all its L1 values, for ``--steps`` optimiser steps. ``--profile smoke`` takes the same
slice of the smoke profile (64 features in 32 dims, 128 latents), where per-op overhead rather than arithmetic
dominates a step. The batches are drawn once beforehand and replayed to every
trainer, so all of them see the same data and do the same number of steps; data generation is not timed.

Trainers compared (same init, same Adam, same schedule, same renormalisation; the script checks they agree):
  batched      rsae_utils.toys.mmcs.train_batched: all L1 values as one stacked program (bmm, hand-written gradients)
  one-by-one   rsae_utils.toys.mmcs.train_one: the plain reference, one SAE after another (autograd, 2-D matmuls)
  batched M=1  train_batched called once per SAE (isolates the gain of stacking from that of the kernels)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from _quick import write_json

from rsae_utils.params import resolve
from rsae_utils.toys.mmcs import TrainSpec, run_sweep, torch_threads, train_batched, train_one
from rsae_utils.toys.synthetic import DataStream, SparseFeatureWorld, SyntheticSpec


class Replay:
    """A DataStream stand-in that replays pre-drawn batches (one group)."""

    def __init__(self, world: SparseFeatureWorld, batches: list[torch.Tensor]):
        self.world, self.batches, self.i = world, batches, 0
        self.d_model = world.spec.d_model  # what train_batched reads, as from a DataStream

    def next(self) -> torch.Tensor:
        b = self.batches[self.i]
        self.i += 1
        return b[None]

    def reset(self) -> Replay:
        self.i = 0
        return self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps of the slice")
    ap.add_argument("--profile", default="default", choices=["default", "smoke"], help="whose settings to slice")
    ap.add_argument("--dict-size", type=int, default=None, help="latents (default: the profile's largest)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    ap.add_argument("--full", action="store_true", help="also run and time the profile's full sweep")
    ap.add_argument("--quick", action="store_true", help="--profile smoke --steps 5 (a smoke run in seconds)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    if args.quick:
        args.profile, args.steps, args.full = "smoke", 5, False

    cfg = resolve("02_mmcs_goldilocks", args.profile)
    with torch_threads(args.threads):
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (load average {os.getloadavg()[0]:.1f})")
        world = SparseFeatureWorld(
            SyntheticSpec(
                **{k: cfg[k] for k in ("n_features", "d_model", "mean_active", "decay", "mlp_ratio", "world_seed")}
            )
        )
        spec = TrainSpec(
            steps=args.steps, lr=cfg.lr, batch=cfg.batch, decay_frac=cfg.decay_frac, betas=(0.9, cfg.adam_beta2)
        )
        l1 = list(cfg.l1_values)
        M, d, h = len(l1), args.dict_size or max(cfg.dict_sizes), cfg.d_model
        stream = DataStream(world, ["raw"], [0], cfg.batch)
        replay = Replay(world, [stream.next()[0] for _ in range(args.steps)])
        print(
            f"slice of the {args.profile} profile: raw, seed 0, {d} latents, {M} L1 values, "
            f"{args.steps} steps x batch {cfg.batch}"
        )

        # Warm-up (first touches of fresh memory are slow on these VMs).
        train_batched(Replay(world, replay.batches[:3]), [0] * M, l1, [0] * M, d, TrainSpec(steps=3, batch=cfg.batch))

        t0 = time.perf_counter()
        stacked = train_batched(replay.reset(), [0] * M, l1, [0] * M, d, spec)
        t_batched = time.perf_counter() - t0

        t0 = time.perf_counter()
        ref = []
        for v in l1:
            replay.reset()
            ref.append(train_one(lambda: replay.next()[0], v, 0, d, h, spec))
        t_single = time.perf_counter() - t0

        t0 = time.perf_counter()
        for v in l1:
            train_batched(replay.reset(), [0], [v], [0], d, spec)
        t_m1 = time.perf_counter() - t0

        diff = max(float((stacked.w_dec[m] - ref[m][2]).abs().max()) for m in range(M))
        per = 1000 / (M * args.steps)
        print(f"batched      {t_batched:8.2f} s   {t_batched * per:6.2f} ms per SAE-step")
        print(f"one-by-one   {t_single:8.2f} s   {t_single * per:6.2f} ms per SAE-step")
        print(f"batched M=1  {t_m1:8.2f} s   {t_m1 * per:6.2f} ms per SAE-step")
        print(f"speed-up of batched over one-by-one:        {t_single / t_batched:5.2f}x")
        print(f"speed-up of batched over batched-M=1 loop:  {t_m1 / t_batched:5.2f}x")
        print(f"max |W_dec batched - W_dec one-by-one| = {diff:.2e}")
        out = {
            "quick": args.quick,
            "profile": args.profile,
            "steps": args.steps,
            "dict_size": d,
            "n_l1": M,
            "threads": torch.get_num_threads(),
            "batched_s": t_batched,
            "one_by_one_s": t_single,
            "batched_m1_s": t_m1,
            "speedup_vs_one_by_one": t_single / t_batched,
            "speedup_vs_batched_m1": t_m1 / t_batched,
            "max_abs_w_dec_diff": diff,
        }

        n_models = len(cfg.conditions) * len(cfg.seeds) * len(l1)
        units = sum(n_models * s / d for s in cfg.dict_sizes)
        est = t_batched / (M * args.steps) * units * cfg.steps
        print(
            f"estimate for the full {args.profile} sweep ({n_models} SAEs x dict sizes {list(cfg.dict_sizes)}, "
            f"{cfg.steps} steps; training only, scaled by latents): {est:.0f} s"
        )

        if args.full:
            t0 = time.perf_counter()
            df = run_sweep(
                world,
                cfg.conditions,
                cfg.dict_sizes,
                cfg.l1_values,
                cfg.seeds,
                TrainSpec(
                    steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, decay_frac=cfg.decay_frac, betas=(0.9, cfg.adam_beta2)
                ),
                n_eval=cfg.n_eval,
            )
            print(f"full {args.profile} sweep: {time.perf_counter() - t0:.1f} s wall ({len(df)} SAEs)")
            out["full_sweep_s"] = time.perf_counter() - t0
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
