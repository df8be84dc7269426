"""Weight-only SAE diagnostics against known answers."""

import math

import numpy as np
import pytest
import torch

from rsae_utils.studies.critique import diagnostics as dg


def _orthogonal(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=g))
    return q.T  # (n, d) orthonormal rows


def test_max_decoder_cosine_orthogonal_and_duplicate():
    W = _orthogonal(8, 16) * torch.arange(1, 9).unsqueeze(1)  # norms do not matter
    mc, _ = dg.max_decoder_cosine(W, block=3)
    assert torch.allclose(mc, torch.zeros(8), atol=1e-6)
    dup = torch.cat([W, 2.5 * W[2:3]])  # latent 8 duplicates latent 2
    mc, arg = dg.max_decoder_cosine(dup, block=4)
    assert mc[2].item() == pytest.approx(1.0, abs=1e-6) and mc[8].item() == pytest.approx(1.0, abs=1e-6)
    assert arg[2].item() == 8 and arg[8].item() == 2
    assert mc[[0, 1, 3]].abs().max() < 1e-6
    anti = torch.cat([W, -W[:1]])
    assert dg.max_decoder_cosine(anti)[0][0].item() == pytest.approx(0.0, abs=1e-6)  # signed: -1 is not a max
    assert dg.max_decoder_cosine(anti, absolute=True)[0][0].item() == pytest.approx(1.0, abs=1e-6)
    # blocking does not change the answer
    g = torch.Generator().manual_seed(1)
    R = torch.randn(50, 10, generator=g)
    assert torch.allclose(dg.max_decoder_cosine(R, block=7)[0], dg.max_decoder_cosine(R, block=1000)[0])


def test_encoder_decoder_cosine_tied_and_orthogonal():
    W_dec = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    tied = 3.0 * W_dec.T  # sae-lens layout (d_in, d_sae)
    assert torch.allclose(dg.encoder_decoder_cosine(tied, W_dec), torch.ones(12), atol=1e-6)
    assert torch.allclose(dg.encoder_decoder_cosine(W_dec.numpy(), W_dec), torch.ones(12), atol=1e-6)  # (d_sae, d_in)
    Q = _orthogonal(2, 4)
    enc = torch.stack([Q[1], Q[0]]).T  # each encoder column orthogonal to its own decoder row
    assert torch.allclose(dg.encoder_decoder_cosine(enc, Q), torch.zeros(2), atol=1e-6)
    with pytest.raises(ValueError):
        dg.encoder_decoder_cosine(torch.zeros(3, 3), W_dec)


def test_reconstruction_bias_and_l2_ratio():
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
    assert dg.relative_reconstruction_bias(x, 0.5 * x) == pytest.approx(2.0)
    assert dg.l2_ratio(x, 0.5 * x) == pytest.approx(0.5)
    assert dg.relative_reconstruction_bias(x, x) == pytest.approx(1.0)
    # orthogonal error does not bias gamma: x_hat = x + e with e orthogonal to x per sample and |e| = |x|
    e = torch.stack([x[:, 1], -x[:, 0]] + [torch.zeros(100)] * 6, dim=1)
    x2 = torch.cat([x[:, :2], torch.zeros(100, 6)], dim=1)
    assert dg.relative_reconstruction_bias(x2, x2 + e) == pytest.approx(0.5)
    assert dg.l2_ratio(x2, x2 + e) == pytest.approx(math.sqrt(2))
    per = dg.l2_ratio(torch.stack([x[0], torch.zeros(8)]), torch.stack([2 * x[0], x[1]]), per_sample=True)
    assert per[0].item() == pytest.approx(2.0) and torch.isnan(per[1])
    assert math.isnan(dg.relative_reconstruction_bias(x, torch.zeros_like(x)))


def test_decoder_top_tokens():
    d, vocab = 6, 10
    W_dec = torch.eye(d)[[3, 0, 5]]  # latents write along basis directions 3, 0, 5
    W_U = torch.zeros(d, vocab)
    W_U[torch.arange(d), torch.arange(d)] = 2.0  # token v < d is read off direction v
    W_U[0, 9] = 1.0  # direction 0 also promotes token 9, less
    ids, logits = dg.decoder_top_tokens(W_dec, W_U, k=2, block=2)
    assert ids[:, 0].tolist() == [3, 0, 5] and ids[1, 1].item() == 9
    assert logits[:, 0].tolist() == [2.0, 2.0, 2.0]
    # Hugging Face layout (vocab, d_in) and a subset of latents
    ids_hf, _ = dg.decoder_top_tokens(W_dec, W_U.T.numpy(), k=1, latents=[2])
    assert ids_hf.tolist() == [[5]]
    low, _ = dg.decoder_top_tokens(-W_dec, W_U, k=1, largest=False)
    assert low[:, 0].tolist() == [3, 0, 5]


def test_weight_summary():
    W_dec = torch.cat([_orthogonal(4, 8), _orthogonal(4, 8)[:1]])
    s = dg.weight_summary(W_dec.T, W_dec)
    assert s["duplicate_share"] == pytest.approx(2 / 5)
    assert s["enc_dec_cos_mean"] == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(s["max_dec_cos_mean"])
