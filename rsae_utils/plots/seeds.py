"""Notebook 07's figures: seed stability of SAE latents (Paulo & Belrose 2025) on trained and random models."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rsae_utils.plots.style import SERIES_COLORS, use_paper_style, variant_color
from rsae_utils.sae.spec import ARCHITECTURES, RELU, TOPK
from rsae_utils.subject.variants import order_variants, variant_label

Labels = Mapping[str, str] | None
ARCH_NAMES = {a: arch.label for a, arch in ARCHITECTURES.items()}
# How each architecture is drawn: TopK solid with filled circles, ReLU + L1 dashed with open squares and hatched bars.
ARCH_STYLE = {TOPK: "-", RELU: "--"}
ARCH_DASH = {TOPK: "solid", RELU: "dash"}  # plotly's name of the same line style
ARCH_MARKER = {TOPK: "o", RELU: "s"}
ARCH_OPEN = {TOPK: False, RELU: True}  # open markers, hatched and lighter bars


def _label(v: str, labels: Labels) -> str:
    return (labels or {}).get(v, variant_label(v))


def _base(table: pd.DataFrame, base_r: int, base_k: int) -> pd.DataFrame:
    return table[table.R.eq(base_r) & table.k.eq(base_k)]


def plot_overview(table: pd.DataFrame, base_r: int, base_k: int, threshold: float = 0.7, labels: Labels = None):
    """Top: shared fraction against threshold at the base cell, a panel per architecture, a line per variant
    (mean over seed pairs, band = min..max). Bottom: TopK shared fraction at ``threshold`` against R and against k
    (ReLU + L1 at the base cell as open markers)."""
    use_paper_style()
    archs = [a for a in ARCHITECTURES if a in set(table.architecture)]
    fig, axes = plt.subplots(2, 2, figsize=(8.2, 6.2), squeeze=False)
    variants = order_variants(table.variant)
    base = _base(table, base_r, base_k)
    for i, arch in enumerate(archs[:2]):
        ax = axes[0][i]
        for v in variants:
            g = base[(base.variant == v) & (base.architecture == arch)].groupby("threshold").shared_fraction
            if not len(g):
                continue
            m = g.mean()
            ax.plot(m.index, m.values, color=variant_color(v), label=_label(v, labels))
            ax.fill_between(m.index, g.min().values, g.max().values, color=variant_color(v), alpha=0.2, lw=0)
        ax.axvline(threshold, color="k", lw=0.6, ls=":")
        l0 = base[base.architecture == arch].l0.mean()
        ax.set(
            title=f"{ARCH_NAMES[arch]}, R={base_r}, k={base_k} (L0 {l0:.0f})",
            xlabel="cosine threshold",
            ylabel="fraction of latents shared",
            ylim=(-0.02, 1.02),
        )
    if len(archs) == 1:
        axes[0][1].axis("off")
    at = table[np.isclose(table.threshold, threshold)]
    for j, (col, fixed, fixed_val) in enumerate((("R", "k", base_k), ("k", "R", base_r))):
        ax = axes[1][j]
        for v in variants:
            for arch in archs:
                sel = at[(at.variant == v) & (at.architecture == arch) & (at[fixed] == fixed_val)]
                g = sel.groupby(col).shared_fraction
                if not len(g):
                    continue
                m = g.mean()
                ax.errorbar(
                    m.index,
                    m.values,
                    yerr=[m.values - g.min().values, g.max().values - m.values],
                    color=variant_color(v),
                    ls=ARCH_STYLE[arch],
                    marker=ARCH_MARKER[arch],
                    mfc="none" if ARCH_OPEN[arch] else variant_color(v),
                    capsize=2,
                    ms=4,
                )
        ax.set(
            xlabel=col,
            ylabel=f"shared at cos > {threshold}",
            title=f"shared fraction against {col} ({fixed}={fixed_val})",
            xticks=sorted(set(at[col])),
        )
    handles, names = axes[0][0].get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], color="k", ls=ARCH_STYLE[a], marker=ARCH_MARKER[a], mfc="none" if ARCH_OPEN[a] else "k")
        for a in archs
    ]
    names += [ARCH_NAMES[a] for a in archs]
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 5), bbox_to_anchor=(0.5, 1.0))
    return fig


def plotly_curves(table: pd.DataFrame, labels: Labels = None):
    """Every group's shared fraction against threshold (one trace per variant x cell; hover for the pair range)."""
    fig = go.Figure()
    for (v, arch, r, k), sub in table.groupby(["variant", "architecture", "R", "k"], sort=False):
        g = sub.groupby("threshold")
        m = g.shared_fraction.mean()
        text = [
            f"pairs {lo:.3f}-{hi:.3f}, same partner {sp:.3f}, L0 {l0:.1f}"
            for lo, hi, sp, l0 in zip(
                g.shared_fraction.min(), g.shared_fraction.max(), g.same_partner_fraction.mean(), g.l0.mean()
            )
        ]
        fig.add_scatter(
            x=m.index,
            y=m.values,
            mode="lines",
            text=text,
            name=f"{_label(v, labels)} | {ARCH_NAMES[arch]} R={r} k={k}",
            line={"color": variant_color(v), "dash": ARCH_DASH[arch]},
        )
    fig.update_layout(
        title="Fraction of latents shared between seeds against the cosine threshold",
        xaxis_title="cosine threshold",
        yaxis_title="fraction shared",
        width=1000,
        height=600,
    )
    return fig


def plot_latents(latents: pd.DataFrame, base_r: int, base_k: int, n_other: int, labels: Labels = None):
    """Reference seed's latents at the base cell: (a) how many other seeds share each latent, (b) mean alignment
    against firing frequency (binned), (c) mean alignment against token entropy (binned); TopK solid, ReLU dashed."""
    use_paper_style()
    lat = _base(latents, base_r, base_k)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    variants = order_variants(lat.variant)
    archs = [a for a in ARCHITECTURES if a in set(lat.architecture)]
    width = 0.8 / max(1, len(variants) * len(archs))
    for i, (v, arch) in enumerate((v, a) for v in variants for a in archs):
        sel = lat[(lat.variant == v) & (lat.architecture == arch)]
        counts = np.bincount(sel.n_sharing, minlength=n_other + 1) / max(len(sel), 1)
        axes[0].bar(
            np.arange(n_other + 1) - 0.4 + width * (i + 0.5),
            counts,
            width,
            color=variant_color(v),
            hatch="//" if ARCH_OPEN[arch] else None,
            alpha=0.6 if ARCH_OPEN[arch] else 1.0,
            label=f"{_label(v, labels)}, {ARCH_NAMES[arch]}",
        )
        live = sel[sel.freq > 0]
        for ax, col, edges in (
            (axes[1], "freq", np.logspace(np.log10(max(live.freq.min(), 1e-6)), 0, 9)),
            (axes[2], "token_entropy", np.linspace(0, max(live.token_entropy.max(), 1e-3), 9)),
        ):
            b = pd.cut(live[col], edges, include_lowest=True)
            m = live.groupby(b, observed=True).align_mean.agg(["mean", "size"])
            m = m[m["size"] >= 5]  # a mean of fewer latents is noise
            mids = [iv.mid for iv in m.index]
            ax.plot(mids, m["mean"], color=variant_color(v), ls=ARCH_STYLE[arch], marker=".")
    axes[0].set(
        xlabel=f"other seeds sharing the latent (of {n_other})",
        ylabel="fraction of latents",
        xticks=range(n_other + 1),
        title="how many seeds share a latent",
    )
    axes[1].set(
        xscale="log",
        xlabel="firing frequency (held-out tokens)",
        ylabel="mean alignment with other seeds",
        title="alignment against firing frequency",
    )
    axes[2].set(
        xlabel="token entropy of top activations (nats)",
        ylabel="mean alignment with other seeds",
        title="alignment against token entropy",
    )
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_toy(latents: pd.DataFrame, seeds: pd.DataFrame):
    """Toy data: best cosine with a true feature of the reference seed's live latents, shared by every other seed
    against the rest, one panel per condition."""
    use_paper_style()
    conds = list(dict.fromkeys(latents.condition))
    fig, axes = plt.subplots(1, len(conds), figsize=(3.8 * len(conds), 3.2), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for ax, c in zip(axes[0], conds):
        live = latents[(latents.condition == c) & latents.alive]
        for (name, sel), color in zip(
            (("shared by all seeds", live[live.shared_all]), ("not shared by all", live[~live.shared_all])),
            SERIES_COLORS,
        ):
            ax.hist(sel.truth_cos, bins=bins, color=color, alpha=0.6, label=f"{name} ({len(sel)})")
        mm = seeds[seeds.condition == c].mmcs.mean()
        ax.set(title=f"{c} data (MMCS {mm:.2f})", xlabel="best cosine with a true feature", ylabel="live latents")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_replicates(reps: pd.DataFrame, labels: Labels = None):
    """Seed replicates of notebook 03's SAEs: a panel per metric, a column of dots (one per SAE seed) per variant
    with a bar at the mean; the vertical spread is what a rerun with another seed moves a headline number by."""
    use_paper_style()
    metrics = list(dict.fromkeys(reps.metric))
    variants = order_variants(list(dict.fromkeys(reps.variant)))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.9 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for x, v in enumerate(variants):
            vals = reps[(reps.metric == metric) & (reps.variant == v)].value.to_numpy(float)
            if not vals.size:
                continue
            ax.scatter(np.full(vals.size, x), vals, s=18, color=variant_color(v), zorder=3)
            ax.hlines(vals.mean(), x - 0.25, x + 0.25, color=variant_color(v), lw=1.5)
        ax.set_xticks(range(len(variants)), [_label(v, labels) for v in variants], rotation=35, ha="right", fontsize=7)
        ax.set_title(metric.replace("_", " "), fontsize=9)
    layer = int(reps.layer.iloc[0]) if len(reps) else -1
    fig.suptitle(f"notebook 03's SAEs retrained with other seeds (layer {layer}): one dot per seed", fontsize=10)
    fig.tight_layout()
    return fig


# What plot_counts draws: (column of notebook 07's at-threshold table, label), per row of panels.
COUNT_BARS = (
    ("shared", "of all latents"),
    ("shared_live", "of live latents"),
    ("same_partner_live", "of live, same partner"),
)
ENCODER_BARS = (("enc", "encoder match"), ("enc_pc1_removed", "encoder match, top PC removed"))


def plot_counts(at: pd.DataFrame, threshold: float = 0.7, labels: Labels = None):
    """Notebook 07's cells counted three ways, a column of panels per variant. Top: the shared fraction of all
    latents, of live latents, and of live latents whose decoder and encoder matchings pick the same partner.
    Bottom: the share of latents whose matched encoder cosine exceeds ``threshold``, before and after the top
    principal component of the encoder directions is projected out (the number above: its variance share)."""
    use_paper_style()
    variants = order_variants(at.variant)
    fig, axes = plt.subplots(2, len(variants), figsize=(3.4 * len(variants), 5.4), squeeze=False, sharey="row")
    for col, v in enumerate(variants):
        sel = at[at.variant == v]
        sel = sel.iloc[np.lexsort((sel.k, sel.R, sel.architecture.map(list(ARCHITECTURES).index)))]
        x = np.arange(len(sel))
        ticks = [f"{ARCH_NAMES[a]}\nR={r} k={k}" for a, r, k in zip(sel.architecture, sel.R, sel.k)]
        for row, bars in enumerate((COUNT_BARS, ENCODER_BARS)):
            ax = axes[row][col]
            width = 0.8 / len(bars)
            for i, (name, label) in enumerate(bars):
                ax.bar(x - 0.4 + width * (i + 0.5), sel[name], width, color=SERIES_COLORS[i + 2 * row], label=label)
            ax.set_xticks(x, ticks, fontsize=6)
            ax.set_title(_label(v, labels), fontsize=9)
        for xi, share, top in zip(x, sel.enc_pc1_share, sel[["enc", "enc_pc1_removed"]].max(axis=1)):
            axes[1][col].text(xi, top, f"PC1 {share:.2f}", ha="center", va="bottom", fontsize=6)
    axes[0][0].set_ylabel(f"shared at cos > {threshold}")
    axes[1][0].set_ylabel(f"encoder cos > {threshold}")
    for row in (0, 1):
        axes[row][-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig
