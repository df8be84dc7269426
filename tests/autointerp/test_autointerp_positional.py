"""Positional statistics of latents against cases with known answers."""

import math

import numpy as np
import pytest
import torch

from rsae_utils.autointerp.synthetic import synthetic_sparse_acts
from rsae_utils.studies.critique import positional as P
from rsae_utils.studies.critique import positional_stats as PS

N_CTX, CTX = 200, 32


def _binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _latents(seed=0):
    rng = np.random.default_rng(seed)
    one = np.zeros((N_CTX, CTX))
    one[:, 5] = 1.0  # fires exactly at position 5, same value every time
    noise = rng.random((N_CTX, CTX))  # iid, no position dependence
    linear = np.tile(np.arange(CTX, dtype=float), (N_CTX, 1))  # grows with position (0 at position 0)
    const = np.repeat(rng.uniform(0.5, 1.5, (N_CTX, 1)), CTX, axis=1)  # constant within each context
    alternating = np.tile(1.5 + 0.5 * (-1.0) ** np.arange(CTX), (N_CTX, 1))  # 2, 1, 2, 1, ...
    return np.stack([one, noise, linear, const, alternating])


@pytest.fixture(scope="module")
def stats():
    return PS.positional_stats(_latents(), n_perm=99, max_lag=4, seed=1)


def test_eta_squared_known_answers(stats):
    one, noise, linear, const, alt = range(5)
    assert stats.eta2[one] == pytest.approx(1.0)
    assert stats.eta2[linear] == pytest.approx(1.0)
    assert stats.eta2[alt] == pytest.approx(1.0)
    assert stats.eta2[const] == pytest.approx(0.0, abs=1e-12)  # all variance is between contexts
    # iid noise: the observed eta^2 is what the shuffled control gives, about (P - 1) / (N - 1)
    expected_null = (CTX - 1) / (N_CTX * CTX - 1)
    assert stats.eta2[noise] == pytest.approx(stats.eta2_null[noise], rel=0.3)
    assert stats.eta2_null[noise] == pytest.approx(expected_null, rel=0.15)
    assert stats.eta2_p[noise] > 0.05
    for i in (one, linear, alt):
        assert stats.eta2_p[i] == pytest.approx(1 / 100)  # the smallest p-value 99 permutations can give
        assert stats.eta2_null[i] < 0.02


def test_mutual_information_known_answers(stats):
    # Binary level (active or not) of a one-position latent: MI = H(level) = h(1/P), and mi_norm = 1.
    assert stats.mi[0] == pytest.approx(_binary_entropy(1 / CTX))
    assert stats.mi_norm[0] == pytest.approx(1.0)
    assert stats.mi_null[0] < 0.1 * stats.mi[0]
    assert stats.mi_p[0] == pytest.approx(1 / 100)
    # Always active: the binary level carries no information.
    assert stats.mi[1] == 0.0 and math.isnan(stats.mi_norm[1])
    # With one level per position the linear latent's level is the position itself: MI = log P, the maximum.
    fine = PS.positional_stats(_latents()[[2]], n_perm=5, n_levels=CTX)
    assert fine.mi[0] == pytest.approx(math.log(CTX))
    assert fine.mi_norm[0] == pytest.approx(1.0)


def test_autocorrelation_known_answers(stats):
    ac = stats.autocorr
    np.testing.assert_allclose(ac[3], 1.0)  # constant within each context
    np.testing.assert_allclose(ac[4], [-1.0, 1.0, -1.0, 1.0])  # alternating
    np.testing.assert_allclose(ac[2], 1.0)  # linear ramp: x_t+k = x_t + k
    assert np.abs(ac[1]).max() < 0.05  # iid noise
    within = P.lag_autocorrelation(P.from_dense(_latents()), 2, mode="within")
    assert np.isnan(within[3]).all()  # constant contexts carry no within-context information: skipped
    np.testing.assert_allclose(within[4], [-1.0, 1.0])
    # per-context estimates of short segments lean negative by about 1 / segment length; still near 0
    assert np.abs(within[1]).max() < 0.1


def test_is_positional_rule(stats):
    assert PS.is_positional(stats).tolist() == [True, False, True, False, True]
    assert not PS.is_boundary(stats).any()


def test_sparse_form_matches_dense_and_boundary_matters():
    sp = synthetic_sparse_acts(n_seq=48, ctx=64, n_token_latents=3, n_random_latents=2, seed=0)
    pos_latent = sp.n_latents - 1  # fires on position 0 of every context
    full = PS.positional_stats(sp, n_perm=99, seed=0)
    dense = np.zeros((sp.n_latents, sp.n_seq * sp.ctx))
    dense[sp.latent, sp.flat] = sp.value
    via_dense = PS.positional_stats(torch.as_tensor(dense.reshape(sp.n_latents, sp.n_seq, sp.ctx)), n_perm=99, seed=0)
    np.testing.assert_allclose(full.eta2, via_dense.eta2, rtol=1e-9)
    np.testing.assert_allclose(full.mi, via_dense.mi, rtol=1e-9)
    np.testing.assert_allclose(full.autocorr, via_dense.autocorr, rtol=1e-9, equal_nan=True)
    flagged = PS.is_positional(full)
    assert flagged[pos_latent] and PS.is_boundary(full)[pos_latent]
    assert not flagged[:pos_latent].any()  # token and random latents are not positional
    assert full.boundary_share[pos_latent] == pytest.approx(1.0)
    # Drop position 0 (as delphi does) and the boundary latent disappears: it never fires elsewhere.
    dropped = PS.positional_stats(sp, include_boundary=False, n_perm=20, seed=0)
    assert not PS.is_positional(dropped)[pos_latent] and math.isnan(dropped.eta2[pos_latent])
    assert dropped.boundary_share[pos_latent] == pytest.approx(1.0)  # still reported from the full context
    # A subset of latents, and small blocks, give the same numbers as one pass.
    sub = PS.positional_stats(sp, n_perm=99, seed=0, latents=[1, pos_latent])
    assert sub.ids.tolist() == [1, pos_latent]
    np.testing.assert_allclose(sub.eta2, full.eta2[[1, pos_latent]])
    blocks = PS.positional_stats(sp, n_perm=0, block_cells=CTX)
    np.testing.assert_allclose(blocks.eta2, full.eta2)
    assert len(full.rows({"variant": "x"})) == sp.n_latents and "autocorr_8" in full.rows()[0]


def test_levels_share_ties_and_shuffle_keeps_contexts():
    pa = P.from_dense(np.array([[[0, 1, 1, 2, 3, 3]]], dtype=float))
    assert P.activation_levels(pa, 3).tolist() == [1, 1, 1, 2, 2]  # ties stay together, equal-count bins
    sh = P.shuffle_within_contexts(P.from_dense(_latents()[:2]), np.random.default_rng(0))
    assert np.isfinite(P.lag_autocorrelation(sh, 2)).all()  # unsorted input is sorted before the lag lookup
    orig = P.from_dense(_latents()[:2])
    # every context keeps its own activations, only their order changes
    for lat in range(2):
        a = np.zeros((N_CTX, CTX))
        b = np.zeros((N_CTX, CTX))
        m, ms = orig.latent == lat, sh.latent == lat
        a[orig.context[m], orig.pos[m]] = orig.value[m]
        b[sh.context[ms], sh.pos[ms]] = sh.value[ms]
        np.testing.assert_allclose(np.sort(a, axis=1), np.sort(b, axis=1))
