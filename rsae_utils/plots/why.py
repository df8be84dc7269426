"""Notebook 06's figures: residual-stream statistics against depth, and SAE metrics against each varied factor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rsae_utils.plots.style import VARIANT_COLORS, use_paper_style, variant_color
from rsae_utils.subject.variants import order_variants, variant_label

Labels = Mapping[str, str] | None
LAYER_STYLES = ("-", "--", ":", "-.")
LAYER_MARKERS = ("o", "s", "^", "D")
SOURCE_STYLES = ("--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (3, 1, 1, 1)))  # dotted is the chance line
METRIC_NAMES = {
    "explained_variance": "explained variance",
    "cos_sim": "cosine (input, recon.)",
    "dead_fraction": "dead latents (held out)",
    "single_token_share": "single-token latents",
    "token_entropy": "token entropy (nats)",
}
FACTOR_NAMES = {
    "width": "SAE width R",
    "norm_gains": "norm gains",
    "embedding_scale": "embedding scale",
    "output_scale": "output-projection scale",
    "train_tokens": "SAE training tokens",
}


def _label(source: str, variant: str, labels: Labels) -> str:
    base = (labels or {}).get(variant, variant_label(variant))
    return base if source == variant else f"{base}, {source.split('+', 1)[1]}"


def plot_residual(stats: pd.DataFrame, labels: Labels = None):
    """Token-identity share (its chance level dotted), position share, median norm and effective dimension
    against layer; a line per cache (notebook 03's variants solid, variants made with other options dashed)."""
    use_paper_style()
    fig, axes = plt.subplots(2, 2, figsize=(8.2, 6.0))
    panels = [
        ("token_share", "variance share of token identity"),
        ("position_share", "variance share of position"),
        ("norm_median", "median residual norm"),
        ("effective_dim", "effective dimension (participation)"),
    ]
    extra = {}
    for v in order_variants(stats.variant):
        sources = list(dict.fromkeys(stats[stats.variant == v].source))
        for src in sorted(sources, key=lambda s: (s != v, s)):
            sub = stats[stats.source == src].sort_values("layer")
            ls = "-" if src == v else SOURCE_STYLES[extra.setdefault(src, len(extra)) % len(SOURCE_STYLES)]
            for ax, (col, _) in zip(axes.flat, panels):
                ax.plot(
                    sub.layer,
                    sub[col],
                    color=variant_color(v),
                    ls=ls,
                    marker="o",
                    ms=3,
                    label=_label(src, v, labels) if col == "token_share" else None,
                )
    chance = stats.groupby("layer").token_chance.mean()  # the same windows in every cache: one level per layer
    axes[0][0].plot(chance.index, chance.values, color="k", ls=":", lw=0.9, label="chance level (token share)")
    for ax, (col, title) in zip(axes.flat, panels):
        ax.set(title=title, xlabel="layer", xticks=sorted(set(stats.layer)))
        if col.endswith("share"):
            ax.set_ylim(-0.02, 1.02)
    axes[1][0].set_yscale("log")
    axes[1][1].set_yscale("log")  # a few outlier directions (1) to a near-isotropic cloud (hundreds)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 3), bbox_to_anchor=(0.5, 1.0))
    return fig


def _x(factor: str, values: Sequence) -> tuple[np.ndarray, list]:
    if factor == "norm_gains":
        order = ["redrawn", "trained"]
        return np.array([order.index(str(v)) for v in values], float), order
    return np.array([float(v) for v in values]), []


def plot_factors(
    table: pd.DataFrame, metrics: Sequence[str] = tuple(METRIC_NAMES), labels: Labels = None, reference: str = "trained"
):
    """A column per varied factor, a row per SAE metric; a line per variant (colour) and layer (line style). Where
    a factor does not apply to the reference (trained) model, its baseline is a thin horizontal line per layer."""
    use_paper_style()
    factors = [f for f in FACTOR_NAMES if f in set(table.factor)]
    metrics = [m for m in metrics if m in table.columns]
    layers = sorted(set(table.layer))
    fig, axes = plt.subplots(
        len(metrics), len(factors), figsize=(2.7 * len(factors) + 0.6, 1.9 * len(metrics)), squeeze=False
    )
    base_ref = table[(table.factor == "width") & (table.variant == reference)]
    for j, f in enumerate(factors):
        sub = table[table.factor == f]
        for i, m in enumerate(metrics):
            ax = axes[i][j]
            for v in order_variants(sub.variant):
                for li, layer in enumerate(layers):
                    g = sub[(sub.variant == v) & (sub.layer == layer)]
                    if not len(g):
                        continue
                    x, ticks = _x(f, g.value)
                    o = np.argsort(x)
                    ax.plot(
                        x[o],
                        g[m].to_numpy()[o],
                        color=variant_color(v),
                        ls=LAYER_STYLES[li % 4],
                        marker=LAYER_MARKERS[li % 4],
                        ms=3.5,
                    )
            if reference not in set(sub.variant):  # the reference at this sweep's R (the base width)
                for li, layer in enumerate(layers):
                    r0 = sub.R.iloc[0]
                    val = base_ref[(base_ref.layer == layer) & (base_ref["R"] == r0)][m]
                    if len(val):
                        ax.axhline(
                            float(val.iloc[0]),
                            color=variant_color(reference),
                            ls=LAYER_STYLES[li % 4],
                            lw=0.8,
                            alpha=0.7,
                        )
            if f in ("width", "embedding_scale", "output_scale", "train_tokens"):
                ax.set_xscale("log", base=2 if f != "train_tokens" else 10)
                vals = sorted({float(v) for v in sub.value})
                ax.set_xticks(vals, [f"{v:g}" for v in vals])
                ax.minorticks_off()
            elif ticks:
                ax.set_xticks(range(len(ticks)), ticks)
                ax.set_xlim(-0.3, len(ticks) - 0.7)
            if i == 0:
                ax.set_title(FACTOR_NAMES[f])
            if j == 0:
                ax.set_ylabel(METRIC_NAMES.get(m, m))
            if m in ("explained_variance", "dead_fraction", "single_token_share"):
                ax.set_ylim(-0.02, 1.02)
    handles = [
        plt.Line2D([], [], color=variant_color(v), label=(labels or {}).get(v, variant_label(v)))
        for v in order_variants(table.variant)
    ]
    handles += [
        plt.Line2D([], [], color="k", ls=LAYER_STYLES[i % 4], marker=LAYER_MARKERS[i % 4], ms=3.5, label=f"layer {x}")
        for i, x in enumerate(layers)
    ]
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), bbox_to_anchor=(0.5, 1.0))
    return fig


def plot_architecture(
    stats: pd.DataFrame,
    saes: pd.DataFrame,
    variants: Sequence[str],
    labels: Labels = None,
    metric: str = "explained_variance",
):
    """The second architecture next to SmolLM2's variants, against layer: token-identity share (adjusted), median
    residual norm relative to layer 0, and the SAE ``metric`` at the base width (``saes``: one row per source and
    layer). A line per variant (only notebook 03's options: ``source == variant``)."""
    use_paper_style()
    fig, axes = plt.subplots(1, 3, figsize=(10.0, 3.3))
    st = stats[(stats.source == stats.variant) & stats.variant.isin(list(variants))]
    sae = saes[(saes.source == saes.variant) & saes.variant.isin(list(variants))]
    for v in order_variants(st.variant):
        s = st[st.variant == v].sort_values("layer")
        ls = SOURCE_STYLES[0] if v not in VARIANT_COLORS else "-"  # a model other than notebook 03's: dashed
        kw = {
            "color": variant_color(v),
            "ls": ls,
            "marker": "o",
            "ms": 3.5,
            "label": (labels or {}).get(v, variant_label(v)),
        }
        axes[0].plot(s.layer, s.token_share_adj, **kw)
        axes[1].plot(s.layer, s.norm_median / s.norm_median.iloc[0], **kw)
        e = sae[sae.variant == v].drop_duplicates("layer").sort_values("layer")
        if len(e):
            axes[2].plot(e.layer, e[metric], **kw)
    titles = ["token identity (adjusted share)", "median norm / layer 0", METRIC_NAMES.get(metric, metric)]
    ticks = sorted(set(st.layer) | set(sae.layer))
    for ax, t in zip(axes, titles):
        ax.set(title=t, xlabel="layer (blocks applied)", xticks=ticks)
    axes[0].set_ylim(min(-0.02, float(st.token_share_adj.min()) - 0.03), 1.02)  # the adjusted share can be < 0
    axes[2].set_ylim(-0.02, 1.02)
    axes[1].set_yscale("log")
    handles, names = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 4), bbox_to_anchor=(0.5, 1.0))
    return fig
