"""Notebook 03's metrics that a few directions cannot decide: the EV with the top principal directions of the
training activations projected out, and the median per-token FVU, on constructed SAEs with known answers."""

from __future__ import annotations

import pytest
import torch

from rsae_utils.sae.metrics import project_out, reconstruction_metrics, top_directions
from rsae_utils.sae.topk import TopKResult, to_sae_lens


def test_top_directions_find_the_planted_ones():
    gen = torch.Generator().manual_seed(0)
    d = 16
    basis = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    scales = torch.tensor([30.0, 10.0, 5.0] + [1.0] * (d - 3))
    x = (torch.randn(20_000, d, generator=gen) * scales) @ basis.T + 7.0
    dirs = top_directions(x, 3)
    cos = (dirs @ basis[:, :3]).abs()
    assert torch.allclose(cos.diag(), torch.ones(3), atol=1e-2)
    out = project_out(x - x.mean(0), dirs)
    assert (out @ dirs.T).abs().max() < 1e-3  # nothing left along them


def _identity_topk(d: int, k: int):
    """A TopK SAE whose latents are +-e_i: with k = d it reconstructs every input exactly."""
    eye = torch.eye(d)
    W = torch.cat([eye, -eye])
    return to_sae_lens(TopKResult(W_enc=W, b_enc=torch.zeros(2 * d), W_dec=W.clone(), b_dec=torch.zeros(d), k=k))


def test_reconstruction_measures_known_answers():
    d = 8
    x = torch.randn(500, d, generator=torch.Generator().manual_seed(1))
    exact = reconstruction_metrics(_identity_topk(d, d), x, dirs=top_directions(x, 2))
    assert exact["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert exact["ev_top_pcs_out"] == pytest.approx(1.0, abs=1e-6)
    assert exact["median_token_fvu"] == pytest.approx(0.0, abs=1e-6)
    # k = 1 keeps each token's largest coordinate: the per-token FVU is what the other coordinates hold
    one = reconstruction_metrics(_identity_topk(d, 1), x, dirs=top_directions(x, 0))
    xc = x - x.mean(0)
    kept = x.abs().max(1).values ** 2
    assert one["ev_top_pcs_out"] == pytest.approx(one["explained_variance"], abs=1e-5)  # no direction out
    want = ((x.pow(2).sum(1) - kept) / xc.pow(2).sum(1)).median().item()
    assert one["median_token_fvu"] == pytest.approx(want, rel=1e-4)


def test_ev_without_the_massive_direction():
    # One direction with 100x the spread that the SAE gets exactly, the rest it misses: EV is high, EV with the
    # top direction out is 0.
    gen = torch.Generator().manual_seed(2)
    d = 6
    x = torch.randn(2000, d, generator=gen) * torch.tensor([100.0] + [1.0] * (d - 1))
    res = reconstruction_metrics(_identity_topk(d, 1), x, dirs=top_directions(x, 1))
    assert res["explained_variance"] > 0.99
    assert res["ev_top_pcs_out"] < 0.05
