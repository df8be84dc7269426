"""The 2-D superposition demo of Heap et al.: sparse features survive a random network.

``n_sparse`` (3) heavy-tailed sparse features, each Lomax(shape 1, scale 1) drawn as ``(Pareto(1) - 1) x random
sign``, are projected to ``n_dense`` (2) dimensions by an IID standard-normal matrix ``D`` (superposition: three
directions in a plane), passed through a 2-layer ReLU MLP at initialisation (hidden ``4 n_dense``; PyTorch's
``nn.Linear`` default init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases), and mapped back to
``n_sparse`` dimensions by ``pinv(D)``. Four views: sparse input, dense projection, MLP output, sparse view of the
output.

The checkable number per view is the *median angle to the nearest feature ray*: over the 10% of samples
farthest from the image of the zero input (the dense core near the origin carries no direction), the median angle
to the closest of the ``2 n_sparse`` signed feature rays (also: the share within 5 degrees of one). A view's rays
are the images of the feature axes under the map up to that view (for the MLP, the asymptotic direction of
``MLP(t D e_i) - MLP(0)`` for large ``t``). The same numbers for a Gaussian control (the same pipeline fed
isotropic Gaussian input whose median absolute value matches the sparse input; Lomax(1, 1) has infinite variance,
so a moment-matched covariance is undefined) give the chance level of that geometry. A narrow random ReLU network
folds the plane and creates rays of its own (a sector where one hidden unit is active maps onto a single
direction), so the control's chance level rises after the MLP; the sparse data still sit closer to their feature
rays. Excess kurtosis (mean over a view's coordinates) is recorded as a second, coarser tail statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from rsae_utils.synthetic import RandomMLP, _gen

VIEWS = ("sparse input", "dense projection", "MLP output", "sparse view of output")
_TOY = 41
# Median of |N(0, 1)|: a Gaussian with std 1 / this has median absolute value 1, like Lomax(1, 1).
_GAUSS_MEDIAN_ABS = 0.6744897501960817
_RAY_T = 1e4  # "large t" for the asymptotic ray of the ReLU network (biases are O(1))


def sample_lomax_signed(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """(n, k) IID Lomax(1, 1) magnitudes ``1/U - 1`` (Pareto(1) minus 1) with a random sign each."""
    u = 1.0 - torch.rand(n, k, generator=gen, dtype=torch.float64)  # in (0, 1]: no division by zero
    sign = torch.randint(0, 2, (n, k), generator=gen, dtype=torch.float64) * 2 - 1
    return (1.0 / u - 1.0) * sign


@dataclass
class ToyDemo:
    """The four views (data and Gaussian control) and each view's feature rays."""

    views: dict[str, np.ndarray]  # view -> (n, dims) as plotted
    control: dict[str, np.ndarray]
    origins: dict[str, np.ndarray]  # view -> image of the zero input
    rays: dict[str, np.ndarray]  # view -> (2 n_sparse, dims) unit rays
    D: np.ndarray  # (n_dense, n_sparse)


def run_toy(
    n_samples: int = 10_000, n_sparse: int = 3, n_dense: int = 2, hidden_mult: int = 4, seed: int = 0
) -> ToyDemo:
    """Draw the data, the projection and the random MLP from ``seed`` and compute every view."""
    gen = _gen(_TOY, seed)
    D = torch.randn(n_dense, n_sparse, generator=gen, dtype=torch.float64)
    mlp = RandomMLP(n_dense, hidden_mult * n_dense, gen)
    for name in ("w1", "b1", "w2", "b2"):
        setattr(mlp, name, getattr(mlp, name).double())
    pinv = torch.linalg.pinv(D)  # (n_sparse, n_dense)
    s = sample_lomax_signed(n_samples, n_sparse, gen)
    s_ctrl = torch.randn(n_samples, n_sparse, generator=gen, dtype=torch.float64) / _GAUSS_MEDIAN_ABS

    def pipeline(inp: torch.Tensor) -> dict[str, np.ndarray]:
        x = inp @ D.T
        y = mlp(x)
        return dict(zip(VIEWS, (inp.numpy(), x.numpy(), y.numpy(), (y @ pinv.T).numpy())))

    zero = pipeline(torch.zeros(1, n_sparse, dtype=torch.float64))
    axes = torch.cat([torch.eye(n_sparse), -torch.eye(n_sparse)]).double() * _RAY_T
    far = pipeline(axes)
    rays = {}
    for v in VIEWS:
        r = far[v] - zero[v]
        rays[v] = r / np.linalg.norm(r, axis=1, keepdims=True)
    return ToyDemo(
        views=pipeline(s),
        control=pipeline(s_ctrl),
        origins={v: zero[v][0] for v in VIEWS},
        rays=rays,
        D=D.numpy(),
    )


def ray_angles(points: np.ndarray, origin: np.ndarray, rays: np.ndarray, top: float = 0.1) -> np.ndarray:
    """Angle (degrees) to the nearest of ``rays`` for the ``top`` share of points farthest from ``origin``."""
    v = points - origin
    r = np.linalg.norm(v, axis=1)
    keep = r >= np.quantile(r, 1.0 - top)
    cos = (v[keep] / np.maximum(r[keep, None], 1e-300)) @ rays.T
    return np.degrees(np.arccos(np.clip(cos.max(axis=1), -1.0, 1.0)))


def excess_kurtosis(points: np.ndarray) -> float:
    """Fisher excess kurtosis, averaged over coordinates (0 for a Gaussian, huge for heavy-tailed sparse data)."""
    c = points - points.mean(0)
    m2 = (c**2).mean(0)
    m4 = (c**4).mean(0)
    return float(np.mean(m4 / m2**2 - 3.0))


def view_statistics(demo: ToyDemo, top: float = 0.1, angle_deg: float = 5.0) -> pd.DataFrame:
    """One row per view: ray alignment and excess kurtosis of the sparse data and of the Gaussian control.

    ``median_angle``: median angle (degrees) to the nearest feature ray over the ``top`` share of samples farthest
    from the image of the zero input; ``near_ray_share``: the share of those within ``angle_deg`` of a ray.
    ``angle_ratio`` = control / data median angle: > 1 means the data hug the feature rays more than chance.
    """
    rows = []
    for i, v in enumerate(VIEWS):
        o, r = demo.origins[v], demo.rays[v]
        a_data, a_ctrl = ray_angles(demo.views[v], o, r, top), ray_angles(demo.control[v], o, r, top)
        rows.append(
            {
                "view": v,
                "step": i + 1,
                "dims": demo.views[v].shape[1],
                "median_angle": float(np.median(a_data)),
                "median_angle_control": float(np.median(a_ctrl)),
                "near_ray_share": float((a_data < angle_deg).mean()),
                "near_ray_share_control": float((a_ctrl < angle_deg).mean()),
                "excess_kurtosis": excess_kurtosis(demo.views[v]),
                "excess_kurtosis_control": excess_kurtosis(demo.control[v]),
            }
        )
    df = pd.DataFrame(rows)
    df["angle_ratio"] = df["median_angle_control"] / df["median_angle"].clip(lower=1e-9)
    return df



def repeat_statistics(n_repeats: int, top: float = 0.1, angle_deg: float = 5.0, **toy_kwargs) -> pd.DataFrame:
    """``view_statistics`` for seeds 0..n_repeats-1 (new data, D and MLP each), one row per (seed, view)."""
    frames = []
    for seed in range(n_repeats):
        st = view_statistics(run_toy(seed=seed, **toy_kwargs), top=top, angle_deg=angle_deg)
        frames.append(st.assign(seed=seed))
    return pd.concat(frames, ignore_index=True)


def summarize_repeats(rep: pd.DataFrame) -> pd.DataFrame:
    """Per view over seeds: min / median control-to-data angle ratio and the share of seeds where it exceeds 1."""
    g = rep.groupby(["step", "view"])["angle_ratio"]
    share = g.apply(lambda r: float((r > 1).mean()))
    out = pd.DataFrame({"min_ratio": g.min(), "median_ratio": g.median(), "share_above_1": share})
    return out.reset_index()


# --------------------------------------------------------------------------------------------------------------
# Figures
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
    import matplotlib.pyplot as plt

    from rsae_utils.plotting import SERIES_COLORS, use_paper_style

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
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    specs = [[{"type": "scene" if demo.views[v].shape[1] == 3 else "xy"} for v in VIEWS] for _ in range(2)]
    titles = [f"{v} ({lab})" for lab in ("sparse data", "Gaussian control") for v in VIEWS]
    fig = make_subplots(rows=2, cols=4, specs=specs, subplot_titles=titles)
    for row, data in enumerate((demo.views, demo.control)):
        for col, v in enumerate(VIEWS):
            pts = _compress(data[v][:max_points], demo.origins[v])
            color = "#0072B2" if row == 0 else "#555555"
            if pts.shape[1] == 3:
                tr = go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers",
                                  marker={"size": 1.5, "color": color, "opacity": 0.5}, showlegend=False)
            else:
                tr = go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers",
                                  marker={"size": 2, "color": color, "opacity": 0.4}, showlegend=False)
            fig.add_trace(tr, row=row + 1, col=col + 1)
    fig.update_layout(height=800, width=1500, title={"text": "Toy superposition: four views (radius log(1 + r))"})
    return fig
