"""Paper Figure 2: SAE quality metrics against layer, one row per metric, one line per variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from plotly.subplots import make_subplots

from rsae_utils.plots.style import use_paper_style, variant_color
from rsae_utils.subject.variants import order_variants, variant_label

FIGURE_METRICS = ("explained_variance", "cos_sim", "l1", "l0", "dead_fraction", "ce_loss_score", "kl_div")
# Row labels of the figure (the long names, sae.metrics.METRICS, go in tables and hover text).
SHORT = {
    "explained_variance": "explained\nvariance",
    "cos_sim": "cosine\nsimilarity",
    "l1": "L1 of\nlatents",
    "l0": "L0",
    "dead_fraction": "dead\nfraction",
    "ce_loss_score": "CE-loss\nscore",
    "kl_div": "KL(clean||SAE)\nnats/token",
}


def _layout(df: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    models = list(dict.fromkeys(df["model"]))
    variants = order_variants(df["variant"])
    rows = [m for m in metrics if m in set(df["metric"])]
    return models, variants, rows


def plot_grid(df: pd.DataFrame, metrics: Sequence[str] = FIGURE_METRICS, labels: Mapping[str, str] | None = None):
    """Paper Figure 2 layout: one row per metric, one column per model, layer on x, one line per variant."""
    use_paper_style()
    labels = dict(labels or {})
    models, variants, rows = _layout(df, metrics)
    fig, axes = plt.subplots(
        len(rows), len(models), figsize=(3.6 * len(models) + 1.2, 1.55 * len(rows) + 0.6), sharex="col", squeeze=False
    )
    for j, model in enumerate(models):
        for i, metric in enumerate(rows):
            ax = axes[i][j]
            for v in variants:
                sel = df[(df.model == model) & (df.variant == v) & (df.metric == metric)].sort_values("layer")
                if len(sel):
                    ax.plot(
                        sel.layer,
                        sel.value,
                        marker="o",
                        ms=3,
                        color=variant_color(v),
                        label=labels.get(v, variant_label(v)),
                    )
            if j == 0:
                ax.set_ylabel(SHORT.get(metric, metric))
            if i == 0:
                ax.set_title(model)
            if metric == "ce_loss_score":
                ax.axhline(1.0, color="k", lw=0.5, ls=":")
                ax.axhline(0.0, color="k", lw=0.5, ls=":")
        axes[-1][j].set_xlabel("layer")
        axes[-1][j].set_xticks(sorted(set(df[df.model == model].layer)))
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 3), bbox_to_anchor=(0.5, 1.0))
    return fig


def plotly_grid(df: pd.DataFrame, metrics: Sequence[str] = FIGURE_METRICS, labels: Mapping[str, str] | None = None):
    """The same grid as ``plot_grid`` as an interactive plotly figure."""
    labels = dict(labels or {})
    models, variants, rows = _layout(df, metrics)
    fig = make_subplots(
        rows=len(rows), cols=len(models), shared_xaxes=True, column_titles=models, vertical_spacing=0.025
    )
    for j, model in enumerate(models):
        for i, metric in enumerate(rows):
            for v in variants:
                sel = df[(df.model == model) & (df.variant == v) & (df.metric == metric)].sort_values("layer")
                if not len(sel):
                    continue
                fig.add_scatter(
                    x=sel.layer,
                    y=sel.value,
                    mode="lines+markers",
                    row=i + 1,
                    col=j + 1,
                    name=labels.get(v, variant_label(v)),
                    legendgroup=v,
                    showlegend=(i == 0 and j == 0),
                    line={"color": variant_color(v)},
                )
    fig.update_layout(
        height=210 * len(rows) + 80,
        width=520 * len(models) + 200,
        title="SAE quality metrics by layer and model variant",
    )
    for ann in fig.layout.annotations:
        ann.font.size = 10
    fig.update_xaxes(title_text="layer", row=len(rows))
    for i, metric in enumerate(rows):
        fig.update_yaxes(title_text=SHORT.get(metric, metric).replace("\n", "<br>"), row=i + 1, col=1)
    return fig
