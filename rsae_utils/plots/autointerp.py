"""Figures of notebook 05: pooled ROC with bootstrap bands (paper Fig. 1), AUROC and token entropy against layer,
entropy against AUROC per latent, and the LLM-minus-token-baseline gap.

Drawing only: the tables they draw (bootstrap bands, summaries, correlations, gaps) are computed in
:mod:`rsae_utils.studies.roc.tables`; each plotter takes such a table and returns a matplotlib figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.express as px
from matplotlib.lines import Line2D

from rsae_utils.autointerp.baseline import BASELINE_NAME
from rsae_utils.plots.style import variant_color
from rsae_utils.subject.variants import order_variants, variant_label

Labels = Mapping[str, str] | None  # variant -> display label (e.g. the step-0 stand-in's own); None: the default


def roc_figure_name(backend: str) -> str:
    """File name of the ROC figure of ``backend``: ``roc_token_baseline``, ``roc_llm_local``, ``roc_llm_openai``."""
    return "roc_" + ("token_baseline" if backend == BASELINE_NAME else "llm_" + backend.split(":")[0])


def _labeler(labels: Labels) -> Callable[[str], str]:
    labels = dict(labels or {})
    return lambda v: labels.get(v) or variant_label(v)


def _variant_legend(fig, variants: Sequence[str], lab: Callable[[str], str], marker: str = "") -> None:
    """One legend of variant names for the whole figure, above the panels."""

    order = order_variants(variants)
    handles = [Line2D([], [], color=variant_color(v), marker=marker or None, ms=4, lw=1.5) for v in order]
    fig.legend(
        handles,
        [lab(v) for v in order],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(order), 5),
        fontsize=7,
        frameon=False,
    )


def _empty(text: str):
    fig, ax = plt.subplots(figsize=(4, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def plot_roc_grid(
    bands: pd.DataFrame,
    aucs: pd.DataFrame,
    backend: str,
    scorers: Sequence[str] = ("fuzzing", "detection"),
    labels: Labels = None,
):
    """Paper Fig. 1: rows = scorers, columns = layers; one mean ROC + band per variant. Variant names in one legend
    above the panels; each panel's own legend gives the AUROC [95% CI] per variant, in its colour."""
    lab = _labeler(labels)
    sub = bands[bands.backend == backend]
    layers = sorted(sub["layer"].unique())
    scorers = [s for s in scorers if s in set(sub["scorer"])]
    if not layers or not scorers:
        return _empty(f"no scored examples with both labels for {backend}")
    fig, axes = plt.subplots(
        len(scorers), len(layers), figsize=(2.3 * len(layers) + 0.6, 2.4 * len(scorers)), squeeze=False, sharey=True
    )
    for i, scorer in enumerate(scorers):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
            cell = sub[(sub.scorer == scorer) & (sub.layer == layer)]
            for v in order_variants(cell["variant"].unique()):
                c = cell[cell.variant == v]
                a = aucs[
                    (aucs.backend == backend) & (aucs.scorer == scorer) & (aucs.layer == layer) & (aucs.variant == v)
                ]
                auc = f"{a.iloc[0].auroc:.2f} [{a.iloc[0].auroc_lo:.2f}, {a.iloc[0].auroc_hi:.2f}]" if len(a) else "n/a"
                ax.plot(c.fpr, c.tpr, color=variant_color(v), lw=1.2, label=auc)
                ax.fill_between(c.fpr, c.tpr_lo, c.tpr_hi, color=variant_color(v), alpha=0.18, lw=0)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_title(f"{scorer}, layer {layer}")
            if i == len(scorers) - 1:
                ax.set_xlabel("false positive rate")
            if j == 0:
                ax.set_ylabel("true positive rate")
            ax.legend(loc="lower right", fontsize=5.5, handlelength=0.8, title="AUROC [95% CI]", title_fontsize=5.5)
    fig.tight_layout()
    _variant_legend(fig, sub["variant"].unique(), lab)
    fig.suptitle(f"ROC, pooled over sampled latents: {backend}", y=1.08)
    return fig


def _backend_scorer_panels(
    df: pd.DataFrame, scorers: Sequence[str], xlabel: str, ylabel: str, size: tuple[float, float], sharex: bool = False
):
    """(fig, [(ax, rows of that panel)]): one panel per (backend, scorer), the LLM backends first and the token
    baseline last, a chance line at 0.5, titles, and axis labels on the outer panels."""
    backends = sorted(df["backend"].unique(), key=lambda b: (b == BASELINE_NAME, b))
    scorers = [s for s in scorers if s in set(df["scorer"])]
    fig, axes = plt.subplots(
        len(backends),
        len(scorers),
        figsize=(size[0] * len(scorers), size[1] * len(backends)),
        squeeze=False,
        sharey=True,
        sharex=sharex,
    )
    panels = []
    for i, b in enumerate(backends):
        for j, s in enumerate(scorers):
            ax = axes[i][j]
            ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
            ax.set_title(f"{s} · {b}", fontsize=8)
            if i == len(backends) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            panels.append((ax, df[(df.backend == b) & (df.scorer == s)]))
    return fig, panels


def plot_auroc_vs_layer(aucs: pd.DataFrame, scorers: Sequence[str] = ("fuzzing", "detection"), labels: Labels = None):
    """Pooled AUROC with 95% CI against layer; one panel per (backend, scorer), one line per variant. Every panel
    spans every layer in the table (a backend that scored fewer layers shows them in place)."""
    lab = _labeler(labels)
    if aucs.empty:
        return _empty("no AUROC to plot")
    fig, panels = _backend_scorer_panels(aucs, scorers, "layer", "AUROC", (3.2, 2.4), sharex=True)
    layers = sorted(aucs["layer"].unique())
    pad = max(0.5, 0.05 * (layers[-1] - layers[0]))
    for ax, cell in panels:
        for v in order_variants(cell["variant"].unique()):
            c = cell[cell.variant == v].sort_values("layer")
            ax.errorbar(
                c.layer,
                c.auroc,
                yerr=[c.auroc - c.auroc_lo, c.auroc_hi - c.auroc],
                color=variant_color(v),
                marker="o",
                ms=3,
                capsize=2,
                lw=1.2,
                label=lab(v),
            )
        ax.set_ylim(0.3, 1.02)
        ax.set_xlim(layers[0] - pad, layers[-1] + pad)
        ax.set_xticks(layers)
    fig.tight_layout()
    _variant_legend(fig, aucs["variant"].unique(), lab, marker="o")
    return fig


def plot_entropy_vs_layer(summary: pd.DataFrame, labels: Labels = None):
    """Three panels against layer: token entropy (mean +- 95% CI), single-token share, position concentration."""
    lab = _labeler(labels)
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 2.6))
    for v in order_variants(summary["variant"].unique()):
        c = summary[summary.variant == v].sort_values("layer")
        kw = dict(color=variant_color(v), marker="o", ms=3, lw=1.2, label=lab(v))
        axes[0].errorbar(c.layer, c.entropy_mean, yerr=c.entropy_ci, capsize=2, **kw)
        axes[1].plot(c.layer, c.single_token_share, **kw)
        axes[2].plot(c.layer, c.position_concentration, **kw)
    axes[0].set_ylabel("token entropy (nats)")
    axes[1].set_ylabel("single-token latents (share)")
    axes[2].set_ylabel("position concentration")
    axes[1].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("layer")
        ax.set_xticks(sorted(summary["layer"].unique()))
    fig.tight_layout()
    _variant_legend(fig, summary["variant"].unique(), lab, marker="o")
    return fig


def plot_entropy_vs_auroc(
    latents: pd.DataFrame, scorers: Sequence[str] = ("fuzzing", "detection"), labels: Labels = None
):
    """Per-latent token entropy against AUROC: rows = backends, columns = scorers, one colour per variant."""
    lab = _labeler(labels)
    if latents.empty:
        return _empty("no scored latents")
    fig, panels = _backend_scorer_panels(latents, scorers, "token entropy (nats)", "AUROC (per latent)", (3.4, 2.6))
    for ax, cell in panels:
        for v in order_variants(cell["variant"].unique()):
            c = cell[cell.variant == v]
            ax.scatter(c.entropy_nats, c.auroc, s=9, alpha=0.6, color=variant_color(v), label=lab(v), lw=0)
    fig.tight_layout()
    _variant_legend(fig, latents["variant"].unique(), lab, marker="o")
    return fig


def entropy_auroc_plotly(latents: pd.DataFrame, labels: Labels = None):
    """Interactive version: hover shows the latent, its top tokens and its explanation."""

    lab = _labeler(labels)
    df = latents.dropna(subset=["auroc", "entropy_nats"]).copy()
    df["variant_label"] = df["variant"].map(lab)
    order = [lab(v) for v in order_variants(df["variant"].unique())]
    return px.scatter(
        df,
        x="entropy_nats",
        y="auroc",
        color="variant_label",
        facet_col="scorer",
        facet_row="backend",
        hover_data=["layer", "latent", "top_tokens", "explanation"],
        opacity=0.7,
        color_discrete_map={lab(v): variant_color(v) for v in df["variant"].unique()},
        category_orders={"variant_label": order},
        labels={"entropy_nats": "token entropy (nats)", "auroc": "AUROC"},
        title="Token entropy against AUROC, per latent",
    )


def plot_gap(gaps: pd.DataFrame, labels: Labels = None):
    """LLM AUROC minus token-baseline AUROC per variant (mean over paired latents, 95% CI), per backend x scorer."""
    lab = _labeler(labels)
    combos = list(gaps.groupby(["backend", "scorer"], sort=True).groups)
    fig, axes = plt.subplots(1, max(1, len(combos)), figsize=(3.0 * max(1, len(combos)), 2.6), squeeze=False)
    for j, (b, s) in enumerate(combos):
        ax = axes[0][j]
        c = gaps[(gaps.backend == b) & (gaps.scorer == s)]
        order = order_variants(c["variant"].unique())
        c = c.set_index("variant").loc[order]
        x = np.arange(len(order))
        ax.bar(x, c.gap, color=[variant_color(v) for v in order], alpha=0.85)
        ax.errorbar(x, c.gap, yerr=[c.gap - c.gap_lo, c.gap_hi - c.gap], fmt="none", color="k", capsize=2, lw=0.8)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(x, [lab(v) for v in order], rotation=30, ha="right", fontsize=6)
        ax.set_title(f"{s} · {b}", fontsize=8)
        if j == 0:
            ax.set_ylabel("AUROC: LLM − token baseline")
    fig.tight_layout()
    return fig
