"""The Gaussian control with known answers: on sparse data the SAE beats its Gaussian by far; on Gaussian data
it does not; the fitted Gaussian has the data's mean and covariance."""

from __future__ import annotations

import pytest
import torch

from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.sae.spec import FAST, SAESpec
from rsae_utils.studies.why.gaussian import fit_gaussian, fit_rows, gaussian_gap, sample_gaussian

D, N_FEAT, N = 16, 48, 12_000
SPEC = SAESpec(expansion=4, k=2, n_tokens=24_000, batch_size=256, lr=1e-2, seed=0, trainer=FAST)


def sparse_rows(n: int, seed: int) -> torch.Tensor:
    """Rows made of 2 of 48 unit features each, with magnitudes in [1, 2]."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.nn.functional.normalize(torch.randn(N_FEAT, D, generator=torch.Generator().manual_seed(7)), dim=1)
    idx = torch.stack([torch.randperm(N_FEAT, generator=gen)[:2] for _ in range(n)])
    mags = 1.0 + torch.rand(n, 2, generator=gen)
    return (mags[..., None] * feats[idx]).sum(1)


def test_the_fitted_gaussian_has_the_rows_moments():
    x = torch.randn(20_000, 8, generator=torch.Generator().manual_seed(0)) @ torch.randn(8, 8) + 3.0
    mean, factor = fit_gaussian(x)
    g = sample_gaussian(mean, factor, 200_000, seed=1).double()
    assert torch.allclose(g.mean(0), x.double().mean(0), atol=0.05)
    assert torch.allclose(torch.cov(g.T), torch.cov(x.double().T), rtol=0.05, atol=0.05)


def test_sparse_data_beats_its_gaussian():
    x, test = sparse_rows(N, 0), sparse_rows(4000, 1)
    real = reconstruction_metrics(fit_rows(x, SPEC), test, batch_tokens=512)["explained_variance"]
    gauss = gaussian_gap(x, test, SPEC)["gauss_explained_variance"]
    assert real > 0.8
    assert real - gauss > 0.2


def test_gaussian_data_does_not_beat_its_gaussian():
    mean, factor = fit_gaussian(sparse_rows(N, 0))
    x, test = sample_gaussian(mean, factor, N, 5), sample_gaussian(mean, factor, 4000, 6)
    real = reconstruction_metrics(fit_rows(x, SPEC), test, batch_tokens=512)["explained_variance"]
    gauss = gaussian_gap(x, test, SPEC, seed=11)["gauss_explained_variance"]
    assert real - gauss == pytest.approx(0.0, abs=0.03)


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match="rows"):
        fit_gaussian(torch.zeros(1, 4))
