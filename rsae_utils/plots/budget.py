"""The training-budget study's figure: every measure against training tokens (log x), one line per variant, one
column per layer; the repetition run as an open marker, notebook 03's budget as a dotted line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from rsae_utils.plots.style import use_paper_style, variant_color
from rsae_utils.subject.variants import order_variants, variant_label

SHORT = {
    "explained_variance": "explained\nvariance",
    "ev_top_pcs_out": "EV, top 3\nPCs out",
    "median_token_fvu": "median\ntoken FVU",
    "cos_sim": "cosine",
    "dead_fraction": "dead\nfraction",
    "token_entropy": "token\nentropy (nats)",
    "single_token_share": "single-token\nshare",
    "detection_auroc": "detection\nAUROC (tokens)",
    "fuzzing_auroc": "fuzzing\nAUROC (tokens)",
    "seed_shared": "seed-shared\n(max cos > 0.7)",
}


def plot_budget(
    table: pd.DataFrame,
    nb03_tokens: int | None = None,
    labels: Mapping[str, str] | None = None,
    measures: Sequence[str] = (),
):
    """The figure (module docstring) from the study's table (``run == "main"`` rows of seed 0 as lines, the
    ``repeat`` rows as open markers at their budget); ``measures``: the rows, in order (default: every key of
    :data:`SHORT` the table has)."""
    use_paper_style()
    labels = dict(labels or {})
    rows = [m for m in (measures or SHORT) if m in table and table[m].notna().any()]
    layers = sorted(table["layer"].unique())
    fig, axes = plt.subplots(
        len(rows), len(layers), figsize=(3.4 * len(layers) + 1.4, 1.35 * len(rows) + 0.8), sharex=True, squeeze=False
    )
    main = table[(table["run"] == "main") & (table["seed"] == 0)]
    rep = table[(table["run"] == "repeat") & (table["seed"] == 0)]
    for j, layer in enumerate(layers):
        for i, m in enumerate(rows):
            ax = axes[i][j]
            for v in order_variants(table["variant"]):
                g = main[(main["variant"] == v) & (main["layer"] == layer)].sort_values("tokens")
                if g.empty or g[m].isna().all():
                    continue
                ax.plot(g["tokens"], g[m], "-o", ms=2.5, color=variant_color(v), label=labels.get(v, variant_label(v)))
                r = rep[(rep["variant"] == v) & (rep["layer"] == layer)]
                if not r.empty:
                    ax.plot(r["tokens"], r[m], "o", mfc="none", ms=5, color=variant_color(v))
            if nb03_tokens:
                ax.axvline(nb03_tokens, color="0.5", ls=":", lw=0.8)
            ax.set_xscale("log")
            if j == 0:
                ax.set_ylabel(SHORT.get(m, m), fontsize=7)
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("training tokens per SAE")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=max(1, len(names)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig
