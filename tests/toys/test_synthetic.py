"""The Sharkey et al. generator: sparsity, decaying frequencies, unit directions, conditions, reproducibility."""

from __future__ import annotations

import pytest
import torch

from rsae_utils.toys.synthetic import DataStream, SparseFeatureWorld, SyntheticSpec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small matrices: one thread is faster than two that wait on each other on a shared 2-core machine."""
    from rsae_utils.toys.mmcs import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def world() -> SparseFeatureWorld:
    return SparseFeatureWorld(SyntheticSpec(n_calib=8192))  # the paper's G = 512, h = 256


@pytest.fixture(scope="module")
def codes(world) -> torch.Tensor:
    return world.sample_codes(20_000, torch.Generator().manual_seed(1))


def test_mean_active_is_about_five(codes):
    n_active = (codes > 0).sum(1).float()
    # E = 5 exactly by construction; the standard error of the mean over 20k samples is ~0.02.
    assert abs(float(n_active.mean()) - 5.0) < 0.15
    assert float((codes[codes > 0]).max()) < 1.0 and float(codes.min()) == 0.0


def test_frequencies_decay_with_index(world, codes):
    freq = (codes > 0).float().mean(0)
    first, last = float(freq[:64].mean()), float(freq[-64:].mean())
    # Exact marginals: 0.05 * 0.99**i, so the first 64 are ~100x more frequent than the last 64.
    assert first > 30 * last
    blocks = freq.reshape(8, 64).mean(1)
    assert bool((blocks[1:] < blocks[:-1]).all()), f"block frequencies not decreasing: {blocks}"
    expected = world.marginal_probs()
    assert torch.allclose(freq[:64].mean(), expected[:64].mean(), rtol=0.05)
    assert abs(float(expected.sum()) - 5.0) < 1e-3


def test_unit_norm_directions_and_truths(world):
    for cond in ("raw", "mlp", "gaussian"):
        d = world.ground_truth(cond)
        assert d.shape == (512, 256)
        assert torch.allclose(d.norm(dim=1), torch.ones(512), atol=1e-5)


def test_features_are_correlated_through_sigma(world):
    # Sigma is a correlation matrix: alpha has unit-variance marginals.
    alpha = torch.randn(50_000, 512, generator=torch.Generator().manual_seed(3)) @ world.mixing
    assert torch.allclose(alpha.std(0), torch.ones(512), atol=0.03)


def test_reproducible_from_seed():
    spec = SyntheticSpec(n_features=64, d_model=32, n_calib=2048, world_seed=5)
    a, b = SparseFeatureWorld(spec), SparseFeatureWorld(spec)
    assert torch.equal(a.directions, b.directions)
    sa = DataStream(a, ["raw", "mlp", "gaussian"], [0, 1], 32)
    sb = DataStream(b, ["raw", "mlp", "gaussian"], [0, 1], 32)
    for _ in range(3):
        assert torch.equal(sa.next(), sb.next())
    other = SparseFeatureWorld(SyntheticSpec(n_features=64, d_model=32, n_calib=2048, world_seed=6))
    assert not torch.equal(a.directions, other.directions)
    # Seeds give different streams.
    x = DataStream(a, ["raw"], [0, 1], 32).next()
    assert not torch.equal(x[0], x[1])


def test_a_group_replays_alone():
    world = SparseFeatureWorld(SyntheticSpec(n_features=64, d_model=32, n_calib=2048))
    big = DataStream(world, ["raw", "mlp", "gaussian"], [3, 4], 16)
    alone = {g: DataStream(world, [g[0]], [g[1]], 16) for g in big.groups}
    for _ in range(2):
        xb = big.next()
        for i, g in enumerate(big.groups):
            assert torch.equal(xb[i], alone[g].next()[0]), g


def test_conditions_match_raw_scale_and_moments():
    world = SparseFeatureWorld(SyntheticSpec(n_features=128, d_model=64, n_calib=8192))
    s = DataStream(world, ["raw", "mlp", "gaussian"], [0], 8192)
    raw, mlp, gauss = s.next()
    ms = [float(t.pow(2).sum(1).mean()) for t in (raw, mlp, gauss)]
    assert ms[1] == pytest.approx(ms[0], rel=0.1) and ms[2] == pytest.approx(ms[0], rel=0.1)
    assert torch.allclose(gauss.mean(0), raw.mean(0), atol=0.05)
    assert torch.allclose(gauss.std(0), raw.std(0), rtol=0.1, atol=0.01)
    # The MLP condition subtracts MLP(0): an empty input maps to 0.
    assert torch.allclose(world.mlp_transform(torch.zeros(1, 64)), torch.zeros(1, 64), atol=1e-6)


def test_uncorrelated_world_keeps_mean_active():
    world = SparseFeatureWorld(SyntheticSpec(n_features=128, d_model=64, n_calib=1024, correlated=False))
    c = world.sample_codes(20_000, torch.Generator().manual_seed(0))
    assert abs(float((c > 0).sum(1).float().mean()) - 5.0) < 0.15
