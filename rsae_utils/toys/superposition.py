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

from rsae_utils.toys.synthetic import RandomMLP, seeded_generator

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
    gen = seeded_generator(_TOY, seed)
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
