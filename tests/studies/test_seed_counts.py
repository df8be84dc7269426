"""Seed stability counted other ways (studies.seeds.counts): shares of all and of live latents, the same-partner
share, and the encoder-collapse check, each on SAEs built with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsae_utils.sae.matching import Directions, unit_directions
from rsae_utils.studies.seeds.counts import (
    encoder_without_top_pc,
    live_curves,
    pair_rows,
    remove_components,
    removed_curves,
    top_pc,
)
from rsae_utils.studies.seeds.stability import match_saes, shared_fraction_curve

D_IN, N = 128, 40  # 2 * N orthonormal rows must fit in D_IN


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _dirs(enc: torch.Tensor, dec: torch.Tensor) -> Directions:
    """Directions from (n, d) row matrices (encoder rows are W_enc's columns)."""
    return unit_directions(enc.T, dec)


def _orthonormal(n: int, d: int, seed: int) -> torch.Tensor:
    """n orthonormal rows in d dimensions: every cosine between two of them is exactly 0."""
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=_gen(seed)))
    return q.T.contiguous()


def _pair_with_shared(shared: np.ndarray, seed: int = 0) -> tuple[Directions, Directions]:
    """SAE a with orthonormal encoder and decoder rows; SAE b equal to a on the latents in ``shared`` (same index)
    and orthogonal to every latent of a elsewhere."""
    basis = _orthonormal(2 * N, D_IN, seed)
    basis_dec = _orthonormal(2 * N, D_IN, seed + 1)
    enc_a, dec_a = basis[:N], basis_dec[:N]
    enc_b, dec_b = basis[N:].clone(), basis_dec[N:].clone()
    enc_b[shared], dec_b[shared] = enc_a[shared], dec_a[shared]
    return _dirs(enc_a, dec_a), _dirs(enc_b, dec_b)


# --------------------------------------------------------------------------------------------------------------
# Shares of all and of live latents
# --------------------------------------------------------------------------------------------------------------
def test_shares_of_all_and_of_live_latents_known_answer():
    """10 of 40 latents shared; 8 latents of a dead (3 of them shared) and 4 of b dead (1 shared with a latent
    live in a): of all latents 10/40; of a's 32 live latents, 10 - 3 - 1 = 6 are shared with a live partner."""
    shared = np.arange(10)
    a, b = _pair_with_shared(shared)
    live_a = np.ones(N, bool)
    live_a[[0, 1, 2, 20, 21, 22, 23, 24]] = False  # 3 shared, 5 not
    live_b = np.ones(N, bool)
    live_b[[3, 30, 31, 32]] = False  # b's latent 3 is a's latent 3's partner
    r = match_saes(a, b)
    np.testing.assert_array_equal(r.dec_partner[shared], shared)
    c = shared_fraction_curve(r, [0.7])
    live = live_curves(r, live_a, live_b, [0.7])
    assert c.shared[0] == 10 / 40 and c.shared_same_partner[0] == 10 / 40
    assert live["shared_live"][0] == 6 / 32 and live["same_partner_live"][0] == 6 / 32
    # every latent live: the live share is the all-latent share
    everyone = live_curves(r, np.ones(N, bool), np.ones(N, bool), [0.0, 0.7, 1.0])
    np.testing.assert_array_equal(everyone["shared_live"], shared_fraction_curve(r, [0.0, 0.7, 1.0]).shared)


def test_no_live_latent_gives_nan_and_bad_masks_are_refused():
    a, b = _pair_with_shared(np.arange(5))
    r = match_saes(a, b)
    out = live_curves(r, np.zeros(N, bool), np.ones(N, bool), [0.5, 0.7])
    assert np.isnan(out["shared_live"]).all() and np.isnan(out["same_partner_live"]).all()
    with pytest.raises(ValueError, match="live_a"):
        live_curves(r, np.ones(N - 1, bool), np.ones(N, bool), [0.7])
    with pytest.raises(ValueError, match="live_b"):
        live_curves(r, np.ones(N, bool), np.ones(N, int), [0.7])
    with pytest.raises(ValueError, match="thresholds"):
        live_curves(r, np.ones(N, bool), np.ones(N, bool), [1.5])


def test_same_partner_share_counts_only_latents_whose_two_matchings_agree():
    """b is a with its encoder rows 0..5 permuted in a cycle (0 -> 1 -> ... -> 5 -> 0): those six latents match
    at cos 1 on both directions, but their encoder partner is another latent than their decoder partner."""
    enc, dec = _orthonormal(N, D_IN, 3), _orthonormal(N, D_IN, 4)
    perm = torch.arange(N)
    perm[:6] = torch.tensor([1, 2, 3, 4, 5, 0])
    a, b = _dirs(enc, dec), _dirs(enc[perm], dec)
    r = match_saes(a, b)
    assert r.shared.all()  # every matched cosine is 1: all latents "shared" the paper's way
    assert r.same_partner.sum() == N - 6 and not r.same_partner[:6].any()
    c = shared_fraction_curve(r, [0.7])
    assert c.shared[0] == 1.0 and c.shared_same_partner[0] == (N - 6) / N
    live_a = np.ones(N, bool)
    live_a[[0, 10]] = False  # one disagreeing and one agreeing latent dead
    live = live_curves(r, live_a, np.ones(N, bool), [0.7])
    assert live["shared_live"][0] == 1.0 and live["same_partner_live"][0] == (N - 6 - 1) / (N - 2)


# --------------------------------------------------------------------------------------------------------------
# Encoder collapse
# --------------------------------------------------------------------------------------------------------------
def _collapsed(seed: int, noise: float, n: int = 200, d: int = D_IN) -> torch.Tensor:
    """n encoder rows = one shared unit component + ``noise`` * independent Gaussian (per coordinate)."""
    g = _gen(seed)
    common = torch.zeros(d)
    common[0] = 1.0
    return common + noise * torch.randn(n, d, generator=g)


def test_top_pc_share_known_answers():
    share, comp = top_pc(_collapsed(0, noise=0.01))
    assert share > 0.95 and abs(float(comp[0])) == pytest.approx(1.0, abs=1e-3)
    # one direction repeated (any scale and sign): all the second moment in one component
    v = torch.randn(1, D_IN, generator=_gen(1))
    assert top_pc(torch.cat([v, -3 * v, 0.5 * v]))[0] == pytest.approx(1.0, abs=1e-9)
    # orthonormal rows: spread evenly, 1/n in each
    assert top_pc(_orthonormal(16, D_IN, 2))[0] == pytest.approx(1 / 16, abs=1e-6)  # float32 rows
    # random directions: about 1/d, far from 1 (Marchenko-Pastur edge (1 + sqrt(d/n))^2 / d)
    n = 2000
    share_rand = top_pc(torch.randn(n, D_IN, generator=_gen(3)))[0]
    assert 1 / D_IN < share_rand < 1.2 * (1 + (D_IN / n) ** 0.5) ** 2 / D_IN
    with pytest.raises(ValueError, match="x must be"):
        top_pc(torch.zeros(0, D_IN))


def test_remove_components_leaves_unit_rows_orthogonal_to_them():
    x = torch.randn(30, D_IN, generator=_gen(4))
    comps = [torch.randn(D_IN, generator=_gen(5)), torch.randn(D_IN, generator=_gen(6))]
    y = remove_components(x, comps)
    np.testing.assert_allclose(y.norm(dim=1).numpy(), 1.0, atol=1e-5)
    for c in comps:
        np.testing.assert_allclose((y @ c).numpy(), 0.0, atol=1e-4)
    # a row inside the span becomes zero (cosine 0 with everything), not NaN
    z = remove_components(torch.stack([comps[0] + comps[1], x[0]]), comps)
    assert torch.all(z[0] == 0) and torch.isfinite(z).all()
    # a component given twice removes one dimension, not two
    once, twice = remove_components(x, comps[:1]), remove_components(x, [comps[0], -2 * comps[0]])
    np.testing.assert_allclose(once.numpy(), twice.numpy(), atol=1e-6)


def test_encoder_collapse_matches_everything_until_the_shared_component_is_removed():
    """Two SAEs whose encoder rows are one shared component plus small independent noise, with decoders that
    share nothing: every encoder matches at cos > 0.7, none after the component is removed (what is left is
    independent noise, matched at the level of random directions); the decoder fractions do not move."""
    n = 48
    a = _dirs(_collapsed(0, noise=0.02, n=n), torch.randn(n, D_IN, generator=_gen(7)))
    b = _dirs(_collapsed(1, noise=0.02, n=n), torch.randn(n, D_IN, generator=_gen(8)))
    r = match_saes(a, b)
    assert top_pc(a.enc)[0] > 0.9 and top_pc(b.enc)[0] > 0.9
    assert (r.enc_cos > 0.7).all()
    removed = encoder_without_top_pc(a, b)
    # matched cosines of independent random directions in D_IN - 2 dims: well below 0.7
    assert np.nanmax(removed.cos) < 0.7 and np.nanmean(removed.cos) < 0.4
    curves = removed_curves(r, removed, [0.0, 0.7])
    assert curves["enc_pc1_removed"][1] == 0.0 and curves["shared_pc1_removed"][1] == 0.0
    # the same SAE against itself (a shared latent set) still matches after the removal: removal keeps real matches
    same = encoder_without_top_pc(a, a)
    np.testing.assert_array_equal(same.partner, np.arange(n))
    np.testing.assert_allclose(same.cos, 1.0, atol=1e-4)


def test_pair_rows_hold_every_count_per_threshold():
    a, b = _pair_with_shared(np.arange(10))
    r = match_saes(a, b)
    rows = pair_rows(r, 0, 1, np.ones(N, bool), np.ones(N, bool), a, b, [0.0, 0.7])
    assert [row["threshold"] for row in rows] == [0.0, 0.7]
    at7 = rows[1]
    assert at7["shared"] == at7["shared_live"] == at7["same_partner_live"] == 10 / 40
    # orthonormal encoders: no collapse, so removing the top components keeps the 10 shared latents' matches
    assert at7["enc_pc1_removed"] == pytest.approx(at7["enc"], abs=1 / N) and at7["shared_pc1_removed"] <= 10 / 40
