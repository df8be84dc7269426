"""Figures are written with their table and a manifest that records what made them."""

from __future__ import annotations

import json
import time

import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
import pytest

from rsae_utils import outputs
from rsae_utils.params import core as P
from rsae_utils.plots import style as plotting
from rsae_utils.store import file_sha256
from rsae_utils.subject import variants


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.setitem(P.NOTEBOOKS, "96_fig", P.Notebook(params=[P.Param("n", 1, 2, 3, P.is_int())]))
    return P.resolve("96_fig", "smoke", {"n": 9})


def test_save_figure_writes_all_formats_and_manifest(tmp_dirs, cfg):
    _, figs = tmp_dirs
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    table = pd.DataFrame({"x": [0, 1], "y": [1, 0]})
    pfig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    paths = plotting.save_figure(fig, "demo", cfg, table=table, plotly_fig=pfig, note="small default, not the paper")
    assert paths["png"].parent == figs / "smoke"  # non-default profiles go to figures/<profile>/
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    html = paths["html"].read_text()
    # offline without a copy of plotly.js (~4.6 MB) in every figure: the one beside them, which exists
    assert 'src="http' not in html and len(html) < 100_000, "the HTML must not embed plotly.js nor use a CDN"
    assert '<script charset="utf-8" src="plotly.min.js">' in html
    js = figs / "smoke" / "plotly.min.js"
    assert js.stat().st_size > 1_000_000 and b"plotly" in js.read_bytes()[:2000].lower()
    assert "small default, not the paper" in html
    assert pd.read_csv(paths["csv"]).equals(table)
    man = json.loads(paths["manifest"].read_text())
    assert man["params"] == {"n": 9} and man["profile"] == "smoke" and man["notebook"] == "96_fig"
    assert man["runtime_s"] >= 0 and "git_rev" in man["provenance"]
    assert set(man["files"]) == {"png", "pdf", "html", "csv"}
    assert man["assets"]["plotly.min.js"]["sha256"] == file_sha256(js)
    # a second figure shares the file (not rewritten), and the runner records it among the figure's outputs
    mtime = js.stat().st_mtime_ns
    plotting.save_figure(fig, "demo2", cfg, plotly_fig=pfig)
    assert js.stat().st_mtime_ns == mtime
    assert outputs.written_outputs(figs / "smoke", mtime + 1)["plotly.min.js"] == file_sha256(js)
    # a figure no longer made is removed, the shared plotly.js is not
    assert "plotly.min.js" not in outputs.remove_stale_figures(figs / "smoke", "96_fig", "smoke", time.time_ns())
    assert js.exists() and not (figs / "smoke" / "demo2.html").exists()


def test_variant_colours_are_distinct_and_cover_all_variants():
    assert set(plotting.VARIANT_COLORS) == set(variants.VARIANTS) == set(variants.LABELS)
    assert len(set(plotting.VARIANT_COLORS.values())) == len(plotting.VARIANT_COLORS)


def test_tables_name_each_variant_as_its_figure_does():
    df = pd.DataFrame({"model": ["m"] * 3, "variant": ["trained", "step0", "control"], "x": [1, 2, 3]})
    out = variants.with_variant_labels(df, {"step0": "Step-0 (architecture init)"})
    assert list(out.columns) == ["model", "variant", "variant_label", "x"]
    assert list(out.variant_label) == ["Trained", "Step-0 (architecture init)", variants.LABELS["control"]]
    assert "variant_label" not in df  # the input is not modified


def test_run_labels_keep_the_recorded_step0_label():
    from rsae_utils.sae.pipeline import run_labels
    from rsae_utils.subject.variants import STEP0_INITIALIZER, STEP0_STANDIN_LABEL, variant_label

    runs = pd.DataFrame({"variant": ["step0", "step0", "trained"], "label": [STEP0_STANDIN_LABEL] * 2 + ["Trained"]})
    assert run_labels(runs) == {"step0": STEP0_STANDIN_LABEL, "trained": "Trained"}
    assert run_labels(runs.drop(columns="label"))["step0"] == variants.LABELS["step0"]  # an older index
    assert variant_label("step0", {"step0_source": STEP0_INITIALIZER}) == STEP0_STANDIN_LABEL
    assert variant_label("step0", {"step0_source": "pythia step0 checkpoint"}) == "Step-0"
    assert variant_label("control") == variants.LABELS["control"]  # one label table for the project
