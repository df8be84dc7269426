"""Smoke executions of notebooks 01 and 02 through the runner, with assertions on what they wrote."""

from __future__ import annotations

import base64
import json

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
    shown = [base64.b64decode(o["data"]["image/png"]) for c in json.loads(out.read_text())["cells"]
             for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # fmt: skip
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
    # The sweep is a cached artifact: a forced rerun of the notebook reuses it instead of training again.
    sweep_dir = build / "smoke" / "mmcs_sweep"
    first = _manifest(sweep_dir / "manifest.json")
    run_notebook("02_mmcs_goldilocks", "smoke", force=True, progress=False)
    assert _manifest(sweep_dir / "manifest.json")["created"] == first["created"]
    assert pd.read_csv(d / "02_mmcs_goldilocks.csv").equals(table)


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
