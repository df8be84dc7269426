"""Benchmark dense against sparse SAE latent matching (sae.matching) at 2,304, 9,216 and 36,864 latents.

    .venv/bin/python benchmarks/bench_matching.py            # full table (~15-25 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_matching.py --quick    # 256 latents, cells in this process (seconds)
    .venv/bin/python benchmarks/bench_matching.py --sizes 1152 2304   # the small end of the table (~2-3 min)

Every cell is ``match_saes(a, b, method=...)`` -- decoder AND encoder matching, so two assignments -- run in a
fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own; ``extra`` is that peak minus the
resident memory just before matching (the two SAEs already built). Generating the SAEs is not timed.

SAE pairs (d_in 576, each SAE's encoder directions = its decoder directions + noise, cosine ~0.7):
  random            A and B independent Gaussian: no pair is close, the assignment is a near-tie everywhere
                    (an odd, hard case for the dense Hungarian and an easy one for nobody)
  clustered_half    A in clusters of ~8 related latents (within-cluster cosine ~0.4, like feature splitting);
                    B = A with light noise on half the latents (cosine ~0.9) and heavy noise on the other half
                    (cosine ~0.45): about half shared, the rest a crowded background -- the realistic case
  near_duplicates   as clustered_half with tight clusters (within-cluster cosine ~0.8): groups compete for the
                    same partners, which stresses the sparse candidate graph (pricing rounds)

Methods: ``dense`` (full cosine matrices + linear_sum_assignment), ``sparse`` (top-16 candidate graph + pricing
check: exact, ``certified``), ``sparse_noverify`` (candidate graph only). Dense is skipped above ``--dense-max``
latents or when its matrices would not fit ``--mem-gb``; its time there is extrapolated with the power law
through the two largest measured dense sizes of the same structure (printed as "est.").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import torch
from _quick import ROOT, quick_json, write_json

from rsae_utils.sae.matching import Directions
from rsae_utils.studies.seeds.stability import match_saes

D_IN = 576
SIZES = (2304, 9216, 36864)
QUICK_SIZES = (256,)
STRUCTURES = ("random", "clustered_half", "near_duplicates")
METHODS = ("dense", "sparse", "sparse_noverify")
DENSE_BYTES_PER_PAIR = 12  # float32 cosines + scipy's float64 copy, one kind at a time


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def make_pair(structure: str, n: int, seed: int = 0) -> tuple[Directions, Directions]:
    """Two SAEs' unit directions for one benchmark structure (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)

    def noise(sigma: float | torch.Tensor) -> torch.Tensor:
        return sigma * torch.randn(n, D_IN, generator=g)

    def with_encoder(dec: torch.Tensor) -> Directions:
        # noise of norm ~1 per direction: encoder-decoder cosine ~0.7, as in trained SAEs
        return Directions(enc=_unit(dec + noise(1.0 / D_IN**0.5)), dec=dec)

    if structure == "random":
        return with_encoder(_unit(torch.randn(n, D_IN, generator=g))), with_encoder(
            _unit(torch.randn(n, D_IN, generator=g))
        )
    # within-cluster cosine ~ 1 / (1 + s^2 d): s^2 d = 1.5 -> 0.4, 0.25 -> 0.8
    spread = {"clustered_half": 1.5, "near_duplicates": 0.25}[structure]
    centres = _unit(torch.randn(max(n // 8, 1), D_IN, generator=g))
    member = torch.randint(0, len(centres), (n,), generator=g)
    a = with_encoder(_unit(centres[member] + noise((spread / D_IN) ** 0.5)))
    # B: the same latents (encoder and decoder alike) with light noise on half (cosine ~0.9) and heavy noise on
    # the other half (cosine ~0.45), in shuffled order
    heavy = torch.rand(n, 1, generator=g) < 0.5
    sigma = torch.where(heavy, (4.0 / D_IN) ** 0.5, (0.23 / D_IN) ** 0.5)
    perm = torch.randperm(n, generator=g)
    b = Directions(enc=_unit(a.enc + noise(sigma))[perm], dec=_unit(a.dec + noise(sigma))[perm])
    return a, b


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def child(structure: str, n: int, method: str, top_m: int, own_process: bool = True) -> dict:
    """One cell, run in this (fresh, when ``own_process``) process; memory is reported only then."""
    a, b = make_pair(structure, n)
    rss0 = _rss_gb()
    t0 = time.perf_counter()
    r = match_saes(
        a,
        b,
        method="sparse" if method.startswith("sparse") else "dense",
        top_m=top_m,
        verify=method != "sparse_noverify",
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    s = r.summary()
    return {
        "structure": structure,
        "n": n,
        "method": method,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak, 2) if own_process else None,
        "extra_gb": round(peak - rss0, 2) if own_process else None,
        "frac_shared": s.frac_shared,
        "total_dec": r.dec.total,
        "total_enc": r.enc.total,
        "certified": s.certified,
        "n_priced_edges": r.dec.n_priced_edges + r.enc.n_priced_edges,
        "n_fallback_edges": s.n_fallback_edges,
    }


def run_cell(structure: str, n: int, method: str, top_m: int, timeout: float, threads: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        structure,
        str(n),
        method,
        "--top-m",
        str(top_m),
        "--threads",
        str(threads),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"structure": structure, "n": n, "method": method, "skipped": f"timed out after {timeout:.0f} s"}
    except subprocess.CalledProcessError as e:
        return {"structure": structure, "n": n, "method": method, "skipped": f"failed: {e.stderr.strip()[-300:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _estimate(rows: list[dict], structure: str, n: int) -> tuple[float, str] | None:
    """Power-law extrapolation of the dense time through the two largest measured sizes."""
    pts = sorted(
        (r["n"], r["seconds"])
        for r in rows
        if r["structure"] == structure and r["method"] == "dense" and "seconds" in r
    )
    if len(pts) < 2:
        return None
    (n1, t1), (n2, t2) = pts[-2:]
    p = np.log(t2 / t1) / np.log(n2 / n1)
    return float(t2 * (n / n2) ** p), f"t ~ n^{p:.2f} from {n1} and {n2}"


def _fmt(r: dict) -> str:
    if "seconds" in r:
        cert = "" if r["method"] == "dense" else (" cert" if r["certified"] else " uncert")
        mem = "  n/a GB" if r["extra_gb"] is None else f"{r['extra_gb']:5.2f} GB"
        return f"{r['seconds']:8.1f} s  {mem}  shared {r['frac_shared']:.3f}  priced {r['n_priced_edges']:5d}{cert}"
    if "estimate_s" in r:
        return f"~{r['estimate_s']:7.0f} s est. ({r['estimate_basis']}); skipped: {r['skipped']}"
    return f"skipped: {r['skipped']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {QUICK_SIZES}, cells in this process (a smoke run in seconds; no memory figures)",
    )
    ap.add_argument("--in-process", action="store_true", help="run cells here, not in fresh processes (no memory)")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help=f"latents per SAE (default {SIZES})")
    ap.add_argument("--structures", nargs="*", default=list(STRUCTURES), choices=STRUCTURES)
    ap.add_argument("--top-m", type=int, default=16, help="candidate list length of the sparse solver")
    ap.add_argument("--dense-max", type=int, default=9216, help="largest size run densely")
    ap.add_argument("--mem-gb", type=float, default=8.0, help="skip dense when its matrices need more than this")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per cell")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default figures/bench_matching.json; --quick: build/bench_matching_quick.json)",
    )
    ap.add_argument("--child", nargs=3, metavar=("STRUCTURE", "N", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        structure, n, method = args.child
        print(json.dumps(child(structure, int(n), method, args.top_m)))
        return

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    out = args.out or (quick_json("bench_matching") if args.quick else ROOT / "figures" / "bench_matching.json")
    load0 = os.getloadavg()
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), scipy {scipy.__version__}, "
        f"{os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}"
    )
    rows: list[dict] = []
    t_all = time.perf_counter()
    for structure in args.structures:
        for n in sizes:
            for method in METHODS:
                need_gb = DENSE_BYTES_PER_PAIR * n * n / 2**30
                if method == "dense" and (n > args.dense_max or need_gb > args.mem_gb):
                    r = {
                        "structure": structure,
                        "n": n,
                        "method": method,
                        "skipped": f"dense needs ~{need_gb:.1f} GB of cost matrices and O(n^3) time "
                        f"(limits: --dense-max {args.dense_max}, --mem-gb {args.mem_gb:g})",
                    }
                    est = _estimate(rows, structure, n)
                    if est:
                        r["estimate_s"], r["estimate_basis"] = round(est[0], 1), est[1]
                elif args.quick or args.in_process:
                    r = child(structure, n, method, args.top_m, own_process=False)
                else:
                    r = run_cell(structure, n, method, args.top_m, args.timeout, args.threads)
                    r["load_avg_1min"] = round(os.getloadavg()[0], 2)
                rows.append(r)
                print(f"{structure:16s} {n:6d} {method:16s} {_fmt(r)}", flush=True)
            # sparse must reproduce dense where both ran
            cell = {r["method"]: r for r in rows if r["structure"] == structure and r["n"] == n and "seconds" in r}
            if "dense" in cell and "sparse" in cell:
                d, s = cell["dense"], cell["sparse"]
                gap = max(abs(d["total_dec"] - s["total_dec"]), abs(d["total_enc"] - s["total_enc"]))
                print(
                    f"{'':16s} {n:6d} sparse vs dense: |total difference| {gap:.2e}, shared "
                    f"{s['frac_shared']:.4f} vs {d['frac_shared']:.4f}"
                )
                s["max_total_gap_vs_dense"] = gap

    load1 = os.getloadavg()
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; load average now {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print("\n| structure | latents | dense | sparse (certified) | sparse, no pricing |")
    print("|---|---:|---|---|---|")
    for structure in args.structures:
        for n in sizes:
            cells = {r["method"]: r for r in rows if r["structure"] == structure and r["n"] == n}

            def short(r: dict | None) -> str:
                if r is None:
                    return ""
                if "seconds" in r:
                    mem = "" if r["extra_gb"] is None else f", +{r['extra_gb']:.2f} GB"
                    return f"{r['seconds']:.1f} s{mem}"
                return f"~{r['estimate_s']:.0f} s (est.)" if "estimate_s" in r else "skipped"

            print(
                f"| {structure} | {n} | {short(cells.get('dense'))} | {short(cells.get('sparse'))} | "
                f"{short(cells.get('sparse_noverify'))} |"
            )
    meta = {
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "d_in": D_IN,
        "top_m": args.top_m,
        "load_avg_start": load0,
        "load_avg_end": load1,
        "quick": args.quick,
        "in_process": bool(args.quick or args.in_process),
    }
    write_json(out, {"meta": meta, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
