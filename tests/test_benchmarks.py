"""Every ``benchmarks/bench_*.py`` runs in its ``--quick`` mode (tiny sizes, seconds) and writes numbers that make
sense: a benchmark whose imports or calls went stale fails here, not at the next ``make bench``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_topk_train(out: dict) -> None:
    assert out["quick"] and out["d_in"] == 576 and out["k"] == 32
    (row,) = out["results"]
    assert row["R"] == 1 and row["d_sae"] == 576 and row["device"] == "cpu"
    for key in ("peak_gflops", "limit_tok_s", "fast_tok_s", "sae_lens_tok_s", "fast_vs_sae_lens"):
        assert _positive(row[key]), (key, row[key])
    assert row["limit_tok_s"] == pytest.approx(row["peak_gflops"] * 1e9 / (2 * 576 * 576), rel=1e-3)


def _check_matching(out: dict) -> None:
    assert out["meta"]["quick"] and out["meta"]["in_process"]
    rows = out["rows"]
    assert {(r["structure"], r["method"]) for r in rows} == {
        (s, m) for s in ("random", "clustered_half", "near_duplicates") for m in ("dense", "sparse", "sparse_noverify")
    }
    for r in rows:
        assert r["n"] == 256 and r["seconds"] >= 0 and 0 <= r["frac_shared"] <= 1
        assert _positive(r["total_dec"]) and _positive(r["total_enc"])
    # the certified sparse assignment is the optimum dense finds
    for r in (r for r in rows if r["method"] == "sparse"):
        assert r["certified"] and r["max_total_gap_vs_dense"] < 1e-3


def _check_mmcs(out: dict) -> None:
    assert out["quick"] and out["profile"] == "smoke" and out["steps"] == 5
    for key in ("batched_s", "one_by_one_s", "batched_m1_s", "speedup_vs_one_by_one", "speedup_vs_batched_m1"):
        assert _positive(out[key]), (key, out[key])
    assert out["max_abs_w_dec_diff"] < 1e-4  # the batched trainer trains the same SAEs


def _check_harvest(out: dict) -> None:
    assert out["quick"] and out["model"] == "tiny-random" and out["layers"] == [0, 1, 3]
    assert set(out["paths"]) == {"hooked", "lean-float32", "lean-bfloat16"}
    for rec in out["paths"].values():
        assert _positive(rec["median_tok_s"]) and _positive(rec["ratio_vs_hooked"])
    assert out["paths"]["hooked"]["ratio_vs_hooked"] == 1.0
    assert max(out["rel_err_vs_hooked"]["lean-float32"].values()) < 1e-4
    assert max(out["rel_err_vs_hooked"]["lean-bfloat16"].values()) < 0.1


def _check_cache_train(out: dict) -> None:
    assert out["quick"] and out["model"] == "tiny-random" and out["sae_layer"] == 3
    h, t = out["harvest"], out["training"]
    assert h["tokens"] == 16 * 32 and _positive(h["harvest_tok_s"]) and _positive(h["harvest_over_plain"])
    assert t["tokens"] == 2048 and t["d_sae"] == 2 * 64 and t["k"] == 8
    keys = ("cache_train_tok_s", "sae_lens_runner_tok_s", "ratio_cache_over_runner", "ratio_incl_amortised_harvest")
    for key in keys:
        assert _positive(t[key]), (key, t[key])
    assert t["ratio_cache_over_runner"] == pytest.approx(t["cache_train_tok_s"] / t["sae_lens_runner_tok_s"], rel=0.02)
    assert _positive(t["final_train_fvu"])


def _check_llm_judge(out: dict) -> None:
    assert out["quick"] and out["prompts"] == 2 and out["per_prompt"] == 2
    assert _positive(out["single_s"]) and _positive(out["batched_s"]) and _positive(out["speedup"])
    assert out["max_abs_diff"] <= 2e-5  # batched and one-at-a-time answers agree


CHECKS = {
    "bench_topk_train": ("--json", _check_topk_train),
    "bench_matching": ("--out", _check_matching),
    "bench_mmcs": ("--json", _check_mmcs),
    "bench_harvest": ("--json", _check_harvest),
    "bench_cache_train": ("--json", _check_cache_train),
    "bench_llm_judge": ("--json", _check_llm_judge),
}


def test_every_benchmark_is_checked():
    assert sorted(CHECKS) == BENCHMARKS


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "bench_llm_judge" else n for n in BENCHMARKS]
)
def test_benchmark_quick_mode_runs_and_reports_sane_numbers(name, tmp_path):
    flag, check = CHECKS[name]
    committed = {p: p.read_bytes() for p in (ROOT / "figures").glob("bench_*.json")}
    out = tmp_path / f"{name}.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", flag, str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    written = json.loads(out.read_text())
    check(written)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert written["provenance"]["git_rev"] == (head or None)  # every benchmark's numbers name the code they timed
    assert written["provenance"]["packages"]["torch"] == __import__("torch").__version__
    assert {p: p.read_bytes() for p in (ROOT / "figures").glob("bench_*.json")} == committed


def test_quick_runs_never_default_to_the_committed_figures():
    """Without an output option, --quick writes under build/ (the committed figures/bench_*.json stay as made)."""
    for name in ("bench_topk_train", "bench_matching"):
        text = (ROOT / "benchmarks" / f"{name}.py").read_text()
        assert 'quick_json("' in text, name
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _quick import quick_json
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert quick_json("bench_x") == ROOT / "build" / "bench_x_quick.json"
