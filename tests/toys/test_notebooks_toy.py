"""Smoke executions of notebooks 01 and 02 through the runner, with assertions on what they wrote."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from rsae_utils.nbrun import run_notebook
from rsae_utils.params import ParameterError, resolve

pytestmark = pytest.mark.slow


def _manifest(path):
    return json.loads(path.read_text())


def test_notebook_01_smoke(tmp_dirs):
    build, figs = tmp_dirs
    out = run_notebook("01_toy_superposition", "smoke", progress=False)
    assert out.exists()
    d = figs / "smoke"
    for ext in ("png", "pdf", "html", "csv", "manifest.json"):
        assert (d / f"01_toy_superposition.{ext}").stat().st_size > 0, ext
    table = pd.read_csv(d / "01_toy_superposition.csv")
    assert list(table["view"]) == ["sparse input", "dense projection", "MLP output", "sparse view of output"]
    assert (table["angle_ratio"] > 1).all()
    man = _manifest(d / "01_toy_superposition.manifest.json")
    assert man["profile"] == "smoke"
    assert man["params"]["n_samples"] == resolve("01_toy_superposition", "smoke").n_samples
    assert len(man["statistics"]) == 4
    assert all(r["share_above_1"] == 1.0 for r in man["repeats"])
    # the executed notebook shows the committed PNG itself (readers on GitHub see the figure inline)
    shown = [
        base64.b64decode(o["data"]["image/png"])
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert shown == [(d / "01_toy_superposition.png").read_bytes()]


def test_notebook_02_smoke_and_cache(tmp_dirs):
    build, figs = tmp_dirs
    cfg = resolve("02_mmcs_goldilocks", "smoke")
    run_notebook("02_mmcs_goldilocks", "smoke", progress=False)
    d = figs / "smoke"
    for ext in ("png", "pdf", "html", "csv", "manifest.json"):
        assert (d / f"02_mmcs_goldilocks.{ext}").stat().st_size > 0, ext
    table = pd.read_csv(d / "02_mmcs_goldilocks.csv")
    n = len(cfg.conditions) * len(cfg.dict_sizes) * len(cfg.l1_values) * len(cfg.seeds)
    assert len(table) == n
    assert {"condition", "dict_size", "l1", "seed", "mmcs", "l0", "fvu", "dead_frac"} <= set(table.columns)
    assert set(table["condition"]) == set(cfg.conditions)
    assert sorted(table["l1"].unique()) == pytest.approx(sorted(cfg.l1_values))
    assert table["mmcs"].between(0, 1).all()
    # More L1 -> fewer active latents: L0 at the largest coefficient is below L0 at the smallest, everywhere.
    lo, hi = min(cfg.l1_values), max(cfg.l1_values)
    l0 = table.groupby(["condition", "dict_size", "l1"])["l0"].mean().unstack("l1")
    assert (l0[hi] < l0[lo]).all()
    man = _manifest(d / "02_mmcs_goldilocks.manifest.json")
    assert man["params"]["l1_values"] == cfg.l1_values and man["profile"] == "smoke"
    assert len(man["summary"]) == len(cfg.conditions) * len(cfg.dict_sizes)
    # The frontier figure: every SAE of the toy sweep plus the embedding sweep, each with the four measures.
    for ext in ("png", "pdf", "csv", "manifest.json"):
        assert (d / f"02_sparsity_frontier.{ext}").stat().st_size > 0, ext
    points = pd.read_csv(d / "02_sparsity_frontier.csv")
    n_emb = 2 * len(cfg.emb_dict_ratios) * len(cfg.emb_l1_values) * len(cfg.emb_seeds)
    assert len(points) == n + n_emb
    assert set(points["condition"]) == {*cfg.conditions, "embedding", "embedding_gaussian"}
    assert {"ev", "l0", "l1_norm", "l1_over_sqrt_l2", "hoyer"} <= set(points.columns)
    assert points["ev"].le(1.0).all() and points["hoyer"].between(0, 1).all()
    assert (points["l1_over_sqrt_l2"] >= 1 - 1e-9).all()
    np.testing.assert_allclose(points["ev"], 1 - points["fvu"])
    fman = _manifest(d / "02_sparsity_frontier.manifest.json")
    assert fman["embedding_rows"]["d"] == 64 and fman["embedding_rows"]["n_eval"] == cfg.emb_eval_rows  # tiny-random
    fronts = pd.DataFrame(fman["frontiers"])
    assert set(fronts["measure"]) == {"l0", "l1_norm", "l1_over_sqrt_l2", "hoyer"}
    for (m, c), f in fronts.groupby(["measure", "condition"]):
        ev = f.sort_values("sparsity")["ev"].to_numpy()
        assert (np.diff(ev) > 0).all() if m != "hoyer" else (np.diff(ev) < 0).all(), (m, c)
    comp = pd.DataFrame(fman["comparison"])
    assert len(comp) == 4 * 5 and set(comp["verdict"]) <= {
        "above",
        "below",
        "about level with",
        "crossing",
        "not comparable with (no shared sparsity range)",
    }
    # The sweeps are cached artifacts: a forced rerun of the notebook reuses them instead of training again.
    sweep_dir = build / "smoke" / "mmcs_sweep"
    first = _manifest(sweep_dir / "manifest.json")
    first_emb = _manifest(build / "smoke" / "frontier_sweep" / "manifest.json")
    run_notebook("02_mmcs_goldilocks", "smoke", force=True, progress=False)
    assert _manifest(sweep_dir / "manifest.json")["created"] == first["created"]
    assert _manifest(build / "smoke" / "frontier_sweep" / "manifest.json")["created"] == first_emb["created"]
    assert pd.read_csv(d / "02_mmcs_goldilocks.csv").equals(table)
    assert pd.read_csv(d / "02_sparsity_frontier.csv").equals(points)


def test_bad_parameters_stop_before_work(tmp_dirs):
    build, _ = tmp_dirs
    with pytest.raises(ParameterError, match="l1_values"):
        run_notebook("02_mmcs_goldilocks", "smoke", {"l1_values": [0.1, -1.0]}, progress=False)
    with pytest.raises(ParameterError, match="dict_sizes"):
        run_notebook("02_mmcs_goldilocks", "smoke", {"dict_sizes": "1024"}, progress=False)
    with pytest.raises(ParameterError, match="did you mean 'l1_values'"):
        run_notebook("02_mmcs_goldilocks", "smoke", {"l1_value": [0.1, 1.0]}, progress=False)
    with pytest.raises(ParameterError, match="conditions"):
        run_notebook("02_mmcs_goldilocks", "smoke", {"conditions": ["raw", "noise"]}, progress=False)
    with pytest.raises(ParameterError, match="n_dense"):
        run_notebook("01_toy_superposition", "smoke", {"n_dense": 5}, progress=False)
    assert not (build / "smoke" / "mmcs_sweep").exists()
