"""Figures of the toy experiments: the superposition demo (notebook 01) and the MMCS Goldilocks sweep (02)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rsae_utils.plots.style import SERIES_COLORS, use_paper_style
from rsae_utils.toys.superposition import VIEWS, ToyDemo


# --------------------------------------------------------------------------------------------------------------
# 01: toy superposition
# --------------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------------
def _compress(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Coordinates relative to ``origin`` with the radius replaced by log(1 + radius): directions (and hence the
    rays) are unchanged while the heavy Lomax tail and the dense core fit in one picture."""
    v = points - origin
    r = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(r, 1e-300) * np.log1p(r)


def plane_view_angles(D: np.ndarray) -> tuple[float, float]:
    """Matplotlib ``(elev, azim)`` (degrees) that look straight down the normal of the column space of pinv(D).

    The sparse view of the output lives in that plane (a 2-D signal mapped into 3-D), so seen face-on its rays
    are as far apart as they can be; from a generic angle the plane collapses towards a line.
    """
    pinv = np.linalg.pinv(D)
    if pinv.shape != (3, 2):
        raise ValueError(f"plane_view_angles needs n_sparse = 3 and n_dense = 2; got pinv(D) of shape {pinv.shape}")
    n = np.cross(pinv[:, 0], pinv[:, 1])
    n = n / np.linalg.norm(n)
    if n[2] < 0:
        n = -n
    return float(np.degrees(np.arcsin(n[2]))), float(np.degrees(np.arctan2(n[1], n[0])))


def plot_views(demo: ToyDemo, stats: pd.DataFrame, max_points: int = 10_000):
    """2 x 4 grid: the four views of the sparse data (top) and of the Gaussian control (bottom), rays drawn.

    Every panel is centred on the image of the zero input and radially log-compressed (see ``_compress``).
    """
    use_paper_style()
    fig = plt.figure(figsize=(13, 6.6))
    for row, (label, data) in enumerate((("sparse data", demo.views), ("Gaussian control", demo.control))):
        for col, v in enumerate(VIEWS):
            o, rays = demo.origins[v], demo.rays[v]
            pts = _compress(data[v][:max_points], o)
            lim = float(np.abs(_compress(demo.views[v], o)).max()) * 1.05
            st = stats.set_index("view").loc[v]
            angle = st["median_angle"] if row == 0 else st["median_angle_control"]
            three_d = pts.shape[1] == 3
            ax = fig.add_subplot(2, 4, row * 4 + col + 1, projection="3d" if three_d else None)
            color = SERIES_COLORS[0] if row == 0 else "#555555"
            # Rasterized points keep the PDF small (10,000 vector dots per panel made it ~10 MB); text stays vector.
            ax.scatter(*pts.T, s=1.5, alpha=0.35, color=color, linewidths=0, rasterized=True)
            for r in rays:
                ax.plot(*np.stack([np.zeros_like(r), r * lim]).T, color=SERIES_COLORS[3], lw=0.8, alpha=0.8)
            for setter in ("set_xlim", "set_ylim", "set_zlim")[: pts.shape[1]]:
                getattr(ax, setter)(-lim, lim)
            if not three_d:
                ax.set_aspect("equal", adjustable="box")
            elif v == VIEWS[-1] and demo.D.shape == (2, 3):
                ax.view_init(*plane_view_angles(demo.D))
            ax.set_title(f"{col + 1}. {v}\n{label}: median angle to ray {angle:.2f} deg", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(
        "Sparse features survive a random 2-layer ReLU MLP (orange: feature rays; panels centred on the image of 0, "
        "radius log(1 + r))"
    )
    fig.tight_layout()
    return fig


def plotly_views(demo: ToyDemo, max_points: int = 4000):
    """Interactive version (rotate the 3-D views, zoom into the rays), same compression, ``max_points`` per panel."""
    specs = [[{"type": "scene" if demo.views[v].shape[1] == 3 else "xy"} for v in VIEWS] for _ in range(2)]
    titles = [f"{v} ({lab})" for lab in ("sparse data", "Gaussian control") for v in VIEWS]
    fig = make_subplots(rows=2, cols=4, specs=specs, subplot_titles=titles)
    for row, data in enumerate((demo.views, demo.control)):
        for col, v in enumerate(VIEWS):
            pts = _compress(data[v][:max_points], demo.origins[v])
            color = "#0072B2" if row == 0 else "#555555"
            if pts.shape[1] == 3:
                tr = go.Scatter3d(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    z=pts[:, 2],
                    mode="markers",
                    marker={"size": 1.5, "color": color, "opacity": 0.5},
                    showlegend=False,
                )
            else:
                tr = go.Scattergl(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="markers",
                    marker={"size": 2, "color": color, "opacity": 0.4},
                    showlegend=False,
                )
            fig.add_trace(tr, row=row + 1, col=col + 1)
    fig.update_layout(height=800, width=1500, title={"text": "Toy superposition: four views (radius log(1 + r))"})
    return fig


# --------------------------------------------------------------------------------------------------------------
# 02: MMCS Goldilocks sweep
# --------------------------------------------------------------------------------------------------------------
CONDITION_LABELS = {"raw": "raw data", "mlp": "through a random MLP", "gaussian": "Gaussian control"}


def _band(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    g = df.groupby(["condition", "dict_size", "l1"])[metric]
    return pd.DataFrame({"mean": g.mean(), "lo": g.min(), "hi": g.max()}).reset_index()


def plot_goldilocks(df: pd.DataFrame):
    """Row of MMCS panels (one per condition) over a row of L0 and FVU panels; x = L1 (log), line per dict size."""
    use_paper_style()
    conditions = [c for c in ("raw", "mlp", "gaussian") if c in set(df["condition"])]
    sizes = sorted(df["dict_size"].unique())
    colors = {d: SERIES_COLORS[i % len(SERIES_COLORS)] for i, d in enumerate(sizes)}
    n = len(conditions)
    fig, axes = plt.subplots(3, n, figsize=(3.6 * n, 8.4), sharex=True, squeeze=False)
    for row, metric in enumerate(("mmcs", "l0", "fvu")):
        band = _band(df, metric)
        for col, c in enumerate(conditions):
            ax = axes[row][col]
            for d in sizes:
                b = band[(band["condition"] == c) & (band["dict_size"] == d)].sort_values("l1")
                ax.plot(b["l1"], b["mean"], marker="o", ms=3, color=colors[d], label=f"{d} latents")
                ax.fill_between(b["l1"], b["lo"], b["hi"], color=colors[d], alpha=0.2, lw=0)
            ax.set_xscale("log")
            if metric == "mmcs":
                ax.set_ylim(0, 1.02)
                ax.axhline(0.9, color="k", lw=0.6, ls=":")
                ax.set_title(CONDITION_LABELS.get(c, c))
            elif metric == "l0":
                ax.set_yscale("symlog", linthresh=1)
            else:
                ax.set_ylim(0, max(1.05, float(band["hi"].max()) * 1.05) if len(band) else 1.05)
            if col == 0:
                ax.set_ylabel({"mmcs": "MMCS", "l0": "L0 (active latents / sample)", "fvu": "FVU"}[metric])
            if row == 2:
                ax.set_xlabel("L1 coefficient")
    axes[0][0].legend(loc="lower left")
    fig.suptitle("MMCS Goldilocks zone: line = mean over seeds, band = min..max over seeds")
    fig.tight_layout()
    return fig


def plotly_goldilocks(df: pd.DataFrame):
    """Interactive version: hover shows every seed's numbers."""
    conditions = [c for c in ("raw", "mlp", "gaussian") if c in set(df["condition"])]
    sizes = sorted(df["dict_size"].unique())
    fig = make_subplots(
        rows=3, cols=len(conditions), shared_xaxes=True, subplot_titles=[CONDITION_LABELS.get(c, c) for c in conditions]
    )
    for row, metric in enumerate(("mmcs", "l0", "fvu"), start=1):
        band = _band(df, metric)
        for col, c in enumerate(conditions, start=1):
            for i, d in enumerate(sizes):
                b = band[(band["condition"] == c) & (band["dict_size"] == d)].sort_values("l1")
                color = SERIES_COLORS[i % len(SERIES_COLORS)]
                fig.add_trace(
                    go.Scatter(
                        x=b["l1"],
                        y=b["mean"],
                        mode="lines+markers",
                        name=f"{d} latents",
                        legendgroup=str(d),
                        showlegend=(row == 1 and col == 1),
                        line={"color": color},
                        error_y={
                            "type": "data",
                            "symmetric": False,
                            "array": b["hi"] - b["mean"],
                            "arrayminus": b["mean"] - b["lo"],
                        },
                        hovertemplate=f"{c}, {d} latents<br>l1=%{{x:.3g}}<br>{metric}=%{{y:.3f}}<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )
            fig.update_xaxes(type="log", row=row, col=col)
        fig.update_yaxes(title_text={"mmcs": "MMCS", "l0": "L0", "fvu": "FVU"}[metric], row=row, col=1)
    fig.update_layout(height=900, width=400 * len(conditions) + 100, title={"text": "MMCS Goldilocks zone"})
    return fig


# --------------------------------------------------------------------------------------------------------------
# 02: explained variance against sparsity
# --------------------------------------------------------------------------------------------------------------
# Each Gaussian control is drawn dashed in the colour of the data it is matched to.
FRONTIER_STYLE = {
    "raw": (SERIES_COLORS[0], "-", "raw toy data"),
    "mlp": (SERIES_COLORS[1], "-", "toy data through a random MLP"),
    "gaussian": (SERIES_COLORS[0], "--", "Gaussian control (toy mean, std)"),
    "embedding": (SERIES_COLORS[2], "-", "token-embedding rows"),
    "embedding_gaussian": (SERIES_COLORS[2], "--", "Gaussian control (rows' mean, covariance)"),
}


def plot_frontier(points: pd.DataFrame, fronts: pd.DataFrame, measures: dict[str, tuple[str, bool]]):
    """One panel per sparsity measure: every SAE as a faint dot, each data source's Pareto frontier as a line.

    ``points``: one row per SAE with ``condition``, ``ev`` and a column per measure; ``fronts``: a
    ``toys.frontier.frontier_table``. The x axis is turned so that sparser is always to the left (Hoyer
    sparsity grows with sparsity, so its axis runs from high to low).
    """
    use_paper_style()
    names = list(measures)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.6), sharey=True, squeeze=False)
    conditions = [c for c in FRONTIER_STYLE if c in set(points["condition"])]
    for ax, m in zip(axes[0], names):
        label, lower_is_sparser = measures[m]
        for c in conditions:
            color, ls, text = FRONTIER_STYLE[c]
            p = points[points["condition"] == c]
            ax.scatter(p[m], p["ev"], s=7, color=color, alpha=0.25, linewidths=0)
            f = fronts[(fronts["measure"] == m) & (fronts["condition"] == c)].sort_values("sparsity")
            ax.plot(f["sparsity"], f["ev"], ls=ls, color=color, marker="o", ms=3, label=text)
        if m != "hoyer":
            ax.set_xscale("log")
        if not lower_is_sparser:
            ax.invert_xaxis()
        ax.set_ylim(-0.05, 1.02)
        ax.set_xlabel(label)
        ax.set_title(f"EV against {label.split(' (')[0]}")
    axes[0][0].set_ylabel("explained variance (1 - FVU, held out)")
    fig.suptitle(
        "Reconstruction-sparsity frontiers of L1 SAEs (dots: every SAE; lines: Pareto frontier; "
        "sparser to the left, better up)"
    )
    fig.tight_layout()
    # One legend beside the panels: inside one it hid the dense ends of the frontiers.
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), handlelength=3)
    return fig
