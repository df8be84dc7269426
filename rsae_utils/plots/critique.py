"""Notebook 08's figures: positional latents, token-identity scorers with intervals, SAE diagnostics, by variant and
layer. They take the tables of :mod:`rsae_utils.studies.critique.tables` and return matplotlib figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from rsae_utils.plots.style import use_paper_style, variant_color
from rsae_utils.studies.critique.run import SCORERS, SERIES
from rsae_utils.subject.variants import order_variants, variant_label

Labels = Mapping[str, str] | None
DIAGNOSTIC_TITLES = {
    "max_dec_cos_mean": "max decoder cosine (mean)",
    "enc_dec_cos_mean": "encoder-decoder cosine (mean)",
    "rel_recon_bias": "relative reconstruction bias",
    "l2_ratio": "L2 ratio ||x_hat|| / ||x||",
    "duplicate_share": "latents with a near-duplicate",
}


def _lab(v: str, labels: Labels) -> str:
    return (labels or {}).get(v) or variant_label(v)


def _legend(fig, variants: Sequence[str], labels: Labels, extra: Sequence[tuple] = ()) -> None:
    handles = [Line2D([], [], color=variant_color(v), marker="o", ms=4, lw=1.5) for v in variants]
    names = [_lab(v, labels) for v in variants]
    for handle, name in extra:
        handles.append(handle)
        names.append(name)
    fig.legend(
        handles,
        names,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(names), 4),
        fontsize=7,
        frameon=False,
    )


def _empty(text: str):
    fig, ax = plt.subplots(figsize=(4, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def plot_positional(summary: pd.DataFrame, labels: Labels = None):
    """Share of judged latents the binned firing-rate test calls positional, a bar per (layer, variant), a panel per
    boundary view; the share the same rule gives on position-shuffled activations (its false-positive rate) as a
    black tick."""
    if summary.empty:
        return _empty("no live latents")
    use_paper_style()
    views = [b for b in ("exclude", "include") if b in set(summary.boundary)]
    variants = order_variants(summary.variant)
    layers = sorted(set(summary.layer))
    fig, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views), 3.0), squeeze=False, sharey=True)
    width = 0.8 / len(variants)
    for ax, view in zip(axes[0], views, strict=True):
        d = summary[summary.boundary == view]
        for j, v in enumerate(variants):
            g = d[d.variant == v].set_index("layer").reindex(layers)
            x = np.arange(len(layers)) - 0.4 + width * (j + 0.5)
            ax.bar(x, g.positional_share.fillna(0), width=width, color=variant_color(v), alpha=0.85)
            ax.scatter(x, g.control_share, marker="_", color="k", s=40, lw=1.2, zorder=3)
        ax.set(
            xticks=np.arange(len(layers)),
            xticklabels=[str(x) for x in layers],
            xlabel="layer",
            title=f"boundary token {view}d",
        )
    axes[0][0].set_ylabel("share of judged latents positional")
    fig.tight_layout()
    _legend(fig, variants, labels, [(Line2D([], [], color="k", marker="_", ls="", ms=8), "shuffled-position control")])
    return fig


def plot_scorers(scores: pd.DataFrame, labels: Labels = None):
    """Mean per-latent AUROC against layer with its two-stage bootstrap interval, a panel per scorer, a line per
    variant; in each scorer's panel the token-baseline series it is compared with as a thin dashed line."""
    if scores.empty:
        return _empty("no sampled latents")
    use_paper_style()
    series = [s for s in SERIES if s in set(scores.scorer)]
    variants = order_variants(scores.variant)
    ncol = 4
    nrow = int(np.ceil(len(series) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(10.5, 2.6 * nrow), squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.flat, series, strict=False):
        for j, v in enumerate(variants):
            g = scores[(scores.scorer == name) & (scores.variant == v)].sort_values("layer")
            if g.empty:
                continue
            x = g.layer + 0.08 * (j - (len(variants) - 1) / 2)
            ax.errorbar(
                x,
                g.auroc,
                yerr=[g.auroc - g.auroc_lo, g.auroc_hi - g.auroc],
                color=variant_color(v),
                marker="o",
                ms=3,
                capsize=2,
                lw=1.2,
            )
            if "reference" in g and g.reference.notna().any():
                ref = scores[(scores.scorer == g.reference.iloc[0]) & (scores.variant == v)].sort_values("layer")
                ax.plot(ref.layer, ref.auroc, color=variant_color(v), ls="--", lw=0.8, alpha=0.7)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ref_name = SCORERS.get(name)
        ax.set(title=name + (f"\n(dashed: token baseline {ref_name})" if ref_name else ""), ylim=(0.0, 1.02))
    for ax in axes.flat[len(series) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    for row in axes:
        row[0].set_ylabel("AUROC (mean over latents)")
    fig.tight_layout()
    _legend(fig, variants, labels, [(Line2D([], [], color="grey", ls="--", lw=0.8), "token baseline (reference)")])
    return fig


def plot_diagnostics(diag: pd.DataFrame, labels: Labels = None, metrics: Sequence[str] | None = None):
    """Each weight/reconstruction diagnostic against layer, a line per variant; reference lines at 1 for the
    reconstruction bias and the L2 ratio (an unbiased, unshrunk reconstruction)."""
    if diag.empty:
        return _empty("no SAEs")
    use_paper_style()
    metrics = [m for m in (metrics or DIAGNOSTIC_TITLES) if m in diag]
    variants = order_variants(diag.variant)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 2.6), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for v in variants:
            g = diag[diag.variant == v].sort_values("layer")
            ax.plot(g.layer, g[m], color=variant_color(v), marker="o", ms=3)
        if m in ("rel_recon_bias", "l2_ratio"):
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.set(title=DIAGNOSTIC_TITLES.get(m, m), xlabel="layer")
    fig.tight_layout()
    _legend(fig, variants, labels)
    return fig
