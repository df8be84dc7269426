"""Notebook 06's controlled comparisons: the mean-field prediction against the measured residual, and the
architecture x initializer cells at initialization with their SAEs and Gaussian controls."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from rsae_utils.plots.style import SERIES_COLORS, VARIANT_COLORS, use_paper_style
from rsae_utils.subject.init_cells import LABELS as CELL_LABELS
from rsae_utils.subject.variants import variant_label

Labels = Mapping[str, str] | None


def source_label(source: str, labels: Labels = None) -> str:
    """A cache's name in legends: a cell's label, a variant's (with its options' tag)."""
    if source in CELL_LABELS:
        return CELL_LABELS[source]
    variant, _, tag = source.partition("+")
    base = (labels or {}).get(variant, variant_label(variant))
    return f"{base}, {tag}" if tag else base


def _colors(sources: list[str]) -> dict[str, str]:
    out, i = {}, 0
    for s in sources:
        if s in VARIANT_COLORS:
            out[s] = VARIANT_COLORS[s]
        else:
            out[s] = SERIES_COLORS[i % len(SERIES_COLORS)]
            i += 1
    return out


def plot_prediction(pred: pd.DataFrame, labels: Labels = None):
    """Measured (solid, markers) against predicted (dashed) residual rms norm and token-identity share, by
    fraction of depth; a colour per cache."""
    use_paper_style()
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 4.2))
    sources = list(dict.fromkeys(pred.source))
    colors = _colors(sources)
    for s in sources:
        d = pred[pred.source == s].sort_values("depth_fraction")
        c = colors[s]
        axes[0].plot(d.depth_fraction, d.norm_rms, color=c, marker="o", ms=3.5, label=source_label(s, labels))
        axes[0].plot(d.depth_fraction, d.pred_rms, color=c, ls="--")
        axes[1].plot(d.depth_fraction, d.token_share_adj, color=c, marker="o", ms=3.5)
        axes[1].plot(d.depth_fraction, d.pred_token_share, color=c, ls="--")
    axes[0].set(title="residual rms norm", xlabel="fraction of depth (layer / blocks)", yscale="log")
    axes[1].set(title="token identity share (measured: adjusted)", xlabel="fraction of depth", ylim=(-0.02, 1.02))
    handles, names = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.7))
    fig.legend(
        handles,
        names,
        loc="upper center",
        ncol=3,
        bbox_to_anchor=(0.5, 1.0),
        title="solid: measured, dashed: predicted from per-tensor means and stds",
    )
    return fig


def plot_cells(stats: pd.DataFrame, saes: pd.DataFrame, gauss: pd.DataFrame):
    """The cells at initialization by fraction of depth: token-identity share (adjusted), residual rms norm,
    effective dimension, and the SAEs' explained variance (filled) with their Gaussian controls (hollow)."""
    use_paper_style()
    fig, axes = plt.subplots(1, 4, figsize=(12.0, 3.4))
    cells = list(dict.fromkeys(stats.source))
    colors = _colors(cells)
    for s in cells:
        d = stats[stats.source == s].sort_values("depth_fraction")
        kw = {"color": colors[s], "marker": "o", "ms": 3.5, "ls": "--" if "neox" in s else "-"}
        axes[0].plot(d.depth_fraction, d.token_share_adj, label=CELL_LABELS.get(s, s), **kw)
        axes[1].plot(d.depth_fraction, d.norm_rms, **kw)
        axes[2].plot(d.depth_fraction, d.effective_dim, **kw)
        e = saes[saes.source == s].sort_values("depth_fraction")
        axes[3].plot(e.depth_fraction, e.explained_variance, **kw)
        g = gauss[gauss.source == s].sort_values("depth_fraction")
        axes[3].plot(g.depth_fraction, g.gauss_explained_variance, color=colors[s], marker="o", mfc="none", ls=":")
    titles = [
        "token identity (adjusted share)",
        "residual rms norm",
        "effective dimension",
        "SAE explained variance (hollow: Gaussian)",
    ]
    for ax, t in zip(axes, titles):
        ax.set(title=t, xlabel="fraction of depth")
    axes[1].set_yscale("log")
    axes[0].set_ylim(-0.02, 1.02)
    axes[3].set_ylim(-0.02, 1.02)
    handles, names = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    fig.legend(handles, names, loc="upper center", ncol=len(names), bbox_to_anchor=(0.5, 1.0))
    return fig
