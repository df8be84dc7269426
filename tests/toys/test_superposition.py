"""The 2-D superposition demo: the sampler, the pipeline's algebra, and the per-view statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsae_utils.params import ParameterError, resolve
from rsae_utils.toys.superposition import (
    VIEWS,
    excess_kurtosis,
    ray_angles,
    run_toy,
    sample_lomax_signed,
    view_statistics,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small matrices: one thread is faster than two that wait on each other on a shared 2-core machine."""
    from rsae_utils.toys.mmcs import torch_threads

    with torch_threads(1):
        yield


def test_lomax_sampler_matches_its_distribution():
    s = sample_lomax_signed(200_000, 1, torch.Generator().manual_seed(0))[:, 0].numpy()
    a = np.abs(s)
    # Lomax(1, 1): P(|s| > t) = 1 / (1 + t); median 1; symmetric signs.
    assert np.median(a) == pytest.approx(1.0, rel=0.02)
    assert (a > 9).mean() == pytest.approx(0.1, abs=0.005)
    assert (s > 0).mean() == pytest.approx(0.5, abs=0.01)


@pytest.fixture(scope="module")
def demo():
    return run_toy(n_samples=4000, seed=7)


def test_pipeline_algebra(demo):
    s, x, y, back = (demo.views[v] for v in VIEWS)
    assert s.shape == (4000, 3) and x.shape == (4000, 2) and y.shape == (4000, 2) and back.shape == (4000, 3)
    assert np.allclose(x, s @ demo.D.T)
    assert np.allclose(back, y @ np.linalg.pinv(demo.D).T)
    # Feature rays: unit vectors; in the input view they are the signed axes.
    for v in VIEWS:
        assert np.allclose(np.linalg.norm(demo.rays[v], axis=1), 1.0)
    assert np.allclose(demo.rays["sparse input"], np.vstack([np.eye(3), -np.eye(3)]))


def test_reproducible_and_seed_dependent():
    a, b, c = run_toy(1000, seed=3), run_toy(1000, seed=3), run_toy(1000, seed=4)
    assert np.array_equal(a.views["MLP output"], b.views["MLP output"])
    assert not np.array_equal(a.views["MLP output"], c.views["MLP output"])


@pytest.mark.parametrize("seed", [0, 7])
def test_random_mlp_keeps_the_sparse_structure(seed):
    st = view_statistics(run_toy(10_000, seed=seed)).set_index("view")
    # Every view: the sparse data sit closer to the feature rays than the Gaussian control.
    assert (st["angle_ratio"] > 1.3).all(), st
    # Input view: the axes are the features; the control is isotropic (chance ~1% within 5 deg).
    assert st.loc["sparse input", "near_ray_share"] > 0.5
    assert st.loc["sparse input", "near_ray_share_control"] < 0.05
    # Heavy tails survive every step; a Gaussian input is not heavy-tailed before the MLP.
    assert (st["excess_kurtosis"] > 100).all()
    assert abs(st.loc["sparse input", "excess_kurtosis_control"]) < 0.3


def test_statistics_known_answers():
    g = np.random.default_rng(0).normal(size=(200_000, 2))
    assert excess_kurtosis(g) == pytest.approx(0.0, abs=0.05)
    pts = np.array([[10.0, 0.0], [0.0, -5.0], [3.0, 3.0]])
    ang = ray_angles(pts, np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]), top=1.0)
    assert np.allclose(np.sort(ang), [0.0, 0.0, 45.0])


def test_bad_toy_parameters_name_the_parameter():
    with pytest.raises(ParameterError, match="n_dense"):
        resolve("01_toy_superposition", "smoke", {"n_dense": 3})
    with pytest.raises(ParameterError, match="top_share"):
        resolve("01_toy_superposition", "smoke", {"top_share": 0.0})


def test_plane_view_looks_down_the_normal_of_the_output_plane(demo):
    from rsae_utils.plots.toys import plane_view_angles

    elev, azim = plane_view_angles(demo.D)
    e, a = np.radians(elev), np.radians(azim)
    eye = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])  # matplotlib's viewing direction
    pinv = np.linalg.pinv(demo.D)
    cols = pinv / np.linalg.norm(pinv, axis=0)
    assert np.abs(eye @ cols).max() < 1e-9  # the plane of the sparse view of the output is seen face-on
    # and so are the points of that view, relative to the image of zero
    pts = demo.views[VIEWS[-1]][:500] - demo.origins[VIEWS[-1]]
    assert np.abs(pts @ eye).max() <= 1e-6 * np.abs(pts).max()
    with pytest.raises(ValueError, match="n_sparse = 3"):
        plane_view_angles(np.ones((2, 4)))
