"""Token-detector latents with known answers: a decoder made of the tokens' own directions, a random decoder,
and the shuffled-token control."""

from __future__ import annotations

import pytest
import torch

from rsae_utils.studies.why.detectors import (
    detector_share,
    direction_sets,
    shuffled,
    token_detectors,
    token_directions,
)

D, VOCAB, N = 128, 100, 10_000


def residuals(seed: int = 0, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(VOCAB, D, generator=gen)
    toks = torch.randint(0, VOCAB, (N,), generator=gen)
    acts = emb[toks] + noise * torch.randn(N, D, generator=gen) + 5.0  # with a common offset
    return acts, toks, emb


def test_directions_are_the_tokens_centred_means():
    acts, toks, emb = residuals(noise=0.0)
    dirs, ids = token_directions(acts, toks, min_count=1)
    want = torch.nn.functional.normalize(emb[ids] - acts.mean(0) + 5.0, dim=1)
    assert torch.allclose(dirs, want, atol=1e-5)


def test_a_decoder_of_token_directions_is_all_detectors_and_beats_the_control():
    acts, toks, emb = residuals()
    dec = torch.cat([emb - emb.mean(0), torch.randn(VOCAB, D, generator=torch.Generator().manual_seed(9))])
    out = token_detectors(dec, acts, toks, threshold=0.5, min_count=8)
    assert out["detector_share"] == pytest.approx(0.5, abs=0.03)  # the token half, not the random half
    assert out["detector_control"] < 0.05
    assert out["detector_excess"] > 0.4
    # the direction sets made once (as a sweep over SAEs of one cache does) give the same numbers
    assert token_detectors(dec, sets=direction_sets(acts, toks, min_count=8), threshold=0.5) == out


def test_a_random_decoder_finds_none():
    acts, toks, _ = residuals()
    dec = torch.randn(512, D, generator=torch.Generator().manual_seed(3))
    dirs, _ = token_directions(acts, toks)
    assert detector_share(dec, dirs, 0.7) < 0.01


def test_shuffle_keeps_the_masked_positions_and_the_label_counts():
    toks = torch.arange(40).reshape(4, 10) % 7
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[:, 0] = False
    out = shuffled(toks, mask, seed=1)
    assert torch.equal(out[:, 0], toks[:, 0])
    assert torch.equal(out[mask].sort().values, toks[mask].sort().values)
    assert not torch.equal(out, toks)
