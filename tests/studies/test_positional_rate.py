"""The binned firing-rate test of positional latents against cases with known answers: its null mean, its
false-positive rate on latents whose firing does not depend on position (iid, clustered in contexts, bursty) and on
position-shuffled activations, its power on latents with known positional profiles (where the eta^2 rule has
none), the Benjamini-Hochberg step and the boundary parameter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from rsae_utils.studies.critique import positional_rate as R
from rsae_utils.studies.critique.positional import PositionalActs
from rsae_utils.studies.critique.positional_stats import is_positional, positional_stats
from rsae_utils.studies.critique.positional_table import shuffled_positions

N_CTX, CTX = 96, 128  # the default profile's held-out contexts per SAE
ALPHA = 0.05


def _acts(fired: np.ndarray) -> PositionalActs:
    """(n_latents, n_ctx, ctx) booleans -> PositionalActs with value 1 where fired."""
    lat, c, p = np.nonzero(fired)
    L, n, P = fired.shape
    return PositionalActs(lat, c, p, np.ones(lat.size), L, n, P, np.arange(L))


def _iid(rng, L, rate):
    return rng.random((L, N_CTX, CTX)) < np.asarray(rate).reshape(-1, 1, 1)


def _clustered(rng, L):
    """Whole contexts on or off (a topic latent): 30% of contexts, firing 10% of their positions there."""
    on = rng.random((L, N_CTX, 1)) < 0.3
    return on & (rng.random((L, N_CTX, CTX)) < 0.1)


def _bursty(rng, L, mean_len=8):
    """Runs of consecutive fires (lengths 3..2*mean_len-3) starting anywhere on a line that extends past both ends
    of the context, clipped to it: stationary over position, but a run lands in one or two bins."""
    out = np.zeros((L, N_CTX, CTX), dtype=bool)
    pad = 2 * mean_len
    for lat in range(L):
        n_runs = rng.poisson(0.8 * (CTX + 2 * pad) / CTX, N_CTX)
        for c in np.flatnonzero(n_runs):
            for _ in range(n_runs[c]):
                s = rng.integers(-pad, CTX + pad)
                e = s + rng.integers(3, 2 * mean_len - 2)
                out[lat, c, max(s, 0) : max(min(e, CTX), 0)] = True
    return out


def _fpr(rt: R.RateTest, alpha: float = ALPHA) -> tuple[float, int]:
    return float((rt.p[rt.judged] <= alpha).mean()), int(rt.judged.sum())


def _within(rate: float, n: int, alpha: float = ALPHA, z: float = 3.5) -> bool:
    return abs(rate - alpha) <= z * np.sqrt(alpha * (1 - alpha) / n)


def test_bin_edges_and_bad_input():
    for ctx, b in ((128, 8), (127, 8), (10, 3), (5, 5)):
        w = np.diff(R.bin_edges(ctx, b))
        assert w.sum() == ctx and w.size == b and w.max() - w.min() <= 1
    for b in (1, 11):
        with pytest.raises(ValueError, match="n_bins"):
            R.bin_edges(10, b)
    with pytest.raises(ValueError, match="min_expected"):
        R.rate_test(_acts(np.ones((1, 2, 8), dtype=bool)), 2, min_expected=0)


def test_circular_pair_counts_match_a_dense_count():
    rng = np.random.default_rng(4)
    fired = np.concatenate([_bursty(rng, 3), _iid(rng, 2, [0.3, 0.02])])[:, :20]
    fired[0, 0, [0, 1, CTX - 1]] = True  # pairs across the end of the context
    pa = _acts(fired)
    for max_lag in (1, 15, CTX // 2):
        got = R.circular_pair_counts(pa, max_lag)
        want = [[(fired & np.roll(fired, -d, axis=2)).sum(axis=(1, 2))] for d in range(1, max_lag + 1)]
        assert np.array_equal(got, np.concatenate(want).T)
    with pytest.raises(ValueError, match="max_lag"):
        R.circular_pair_counts(pa, CTX // 2 + 1)


def test_null_mean_is_the_circular_shift_mean():
    """The exact null mean equals a Monte Carlo average of Q over random per-context rotations (a bursty latent, a
    latent firing once per context, one firing everywhere), and the dispersion is 1 with one fire per context."""
    rng = np.random.default_rng(0)
    fired = np.concatenate([_bursty(rng, 1), np.zeros((1, N_CTX, CTX), dtype=bool), np.ones((1, N_CTX, CTX), bool)])
    fired[1, np.arange(N_CTX), rng.integers(0, CTX, N_CTX)] = True
    rt = R.rate_test(_acts(fired), n_bins=8)
    assert rt.dispersion[1] == pytest.approx(1.0) and rt.dispersion[0] > 1.5  # runs: fires land together
    assert rt.dispersion[2] == pytest.approx(0.0, abs=1e-9) and not rt.judged[2]  # firing everywhere: no profile
    widths = np.diff(R.bin_edges(CTX, 8))
    bin_of = np.repeat(np.arange(8), widths)
    sims = []
    c, p = np.nonzero(fired[0])
    for _ in range(3000):
        shift = rng.integers(0, CTX, N_CTX)
        f = np.bincount(bin_of[(p + shift[c]) % CTX], minlength=8)
        e = c.size * widths / CTX
        sims.append(((f - e) ** 2 / e).sum())
    sims = np.array(sims)
    assert rt.dispersion[0] * 7 == pytest.approx(sims.mean(), abs=4 * sims.std() / np.sqrt(sims.size))


def test_false_positive_rate_on_null_latents_is_alpha():
    """Latents whose firing does not depend on position, at the default profile's size: the share with p <= alpha
    is alpha within a binomial tolerance, for iid, context-clustered and bursty firing. Without the dispersion (an
    iid chi-square, i.e. a within-context permutation view) the bursty ones would be called positional."""
    rng = np.random.default_rng(1)
    iid = R.rate_test(_acts(_iid(rng, 600, rng.uniform(0.005, 0.2, 600))))
    clustered = R.rate_test(_acts(_clustered(rng, 300)))
    bursty = R.rate_test(_acts(_bursty(rng, 300)))
    for rt in (iid, clustered, bursty):
        rate, n = _fpr(rt)
        assert n >= 250 and _within(rate, n), (rate, n)
    naive = chi2.sf(bursty.chi2[bursty.judged], 7)
    assert (naive <= ALPHA).mean() > 0.3  # what ignoring the bursts would report
    # the effect floor only removes flags: the rule's false-positive rate is at most the test's
    flagged = R.is_rate_positional(iid, ALPHA, 0.1)
    assert flagged.sum() <= (iid.p[iid.judged] <= ALPHA).sum()


def test_false_positive_rate_holds_down_to_two_expected_fires_per_bin():
    """Rare iid latents (16-50 fires at the default profile's size): judged at min_expected=2, the share with
    p <= alpha is still alpha within a binomial tolerance; min_expected=5 judges fewer of them."""
    rng = np.random.default_rng(6)
    fired = _iid(rng, 1500, rng.uniform(0.0015, 0.004, 1500))
    rt = R.rate_test(_acts(fired), 8, min_expected=2.0)
    rate, n = _fpr(rt)
    assert n > 1200 and _within(rate, n), (rate, n)
    assert R.rate_test(_acts(fired), 8, min_expected=5.0).judged.sum() < 0.7 * n


def test_power_on_known_positional_profiles_where_eta2_has_none():
    """Latents with known profiles at the default size: fires only in the second half (4% overall), at one fixed
    position in every context, never in the first 16 positions: all flagged; the eta^2 rule (excess >= 0.1) misses
    the sparse ones, whose eta^2 is bounded by their firing rate."""
    rng = np.random.default_rng(2)
    L = 60
    late = np.zeros((L, N_CTX, CTX), dtype=bool)
    late[:, :, CTX // 2 :] = rng.random((L, N_CTX, CTX // 2)) < 0.08
    fixed = np.zeros((L, N_CTX, CTX), dtype=bool)
    fixed[:, :, 40] = rng.random((L, N_CTX)) < 0.6
    dip = rng.random((L, N_CTX, CTX)) < 0.03
    dip[:, :, :16] = False
    for fired, min_tv in ((late, 0.45), (fixed, 0.8), (dip, 0.1)):
        rt = R.rate_test(_acts(fired))
        assert rt.judged.all() and (rt.tv >= min_tv).mean() > 0.9
        power = R.is_rate_positional(rt, alpha=0.01, min_tv=0.1).mean()
        assert power >= 0.95, power
        assert R.benjamini_hochberg(rt.p, 0.05).mean() >= 0.95
    st = positional_stats(_acts(late[:20]), n_perm=19, seed=0)
    assert (st.eta2 < 0.08).all() and not is_positional(st, alpha=0.05).any()
    # peak ratio of the late latent: about 2 in the late bins
    assert np.median(R.rate_test(_acts(late)).peak_ratio) == pytest.approx(2.0, abs=0.3)


def test_shuffled_control_flags_about_alpha_and_removes_the_profiles():
    """Position-shuffled activations (the critique's control) of a mix of null and positional latents: the test
    flags about alpha of them, and none of the strongly positional ones keep their profile."""
    rng = np.random.default_rng(3)
    null = _iid(rng, 500, rng.uniform(0.01, 0.2, 500))
    late = np.zeros((100, N_CTX, CTX), dtype=bool)
    late[:, :, CTX // 2 :] = rng.random((100, N_CTX, CTX // 2)) < 0.08
    pa = _acts(np.concatenate([null, late]))
    obs = R.rate_test(pa)
    ctl = R.rate_test(shuffled_positions(pa, keep_boundary=False, rng=rng))
    assert np.array_equal(obs.judged, ctl.judged)  # shuffling keeps every latent's fires
    rate, n = _fpr(ctl)
    assert _within(rate, n), (rate, n)
    assert (obs.p[500:] <= 0.01).all() and (ctl.p[500:] <= 0.01).mean() < 0.1
    # observed minus control estimates the positional share: 100 of 600 latents
    excess = R.is_rate_positional(obs, 0.01, 0.1).mean() - R.is_rate_positional(ctl, 0.01, 0.1).mean()
    assert excess == pytest.approx(100 / 600, abs=0.02)


def test_boundary_position_by_parameter():
    """A latent firing only at position 0 (the boundary token) is positional when the boundary is included and has
    nothing to judge when it is excluded; a latent at position 5 is positional either way."""
    fired = np.zeros((2, N_CTX, CTX), dtype=bool)
    fired[0, :, 0] = True
    fired[1, :, 5] = True
    pa = _acts(fired)
    inc = R.rate_test(pa)
    exc = R.rate_test(pa.without_boundary())
    assert R.is_rate_positional(inc, 0.01, 0.1).tolist() == [True, True]
    assert exc.n_fires[0] == 0 and not exc.judged[0] and R.is_rate_positional(exc, 0.01, 0.1).tolist() == [False, True]


def test_benjamini_hochberg_known_answer():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert np.flatnonzero(R.benjamini_hochberg(p, 0.05)).tolist() == [0, 1]
    assert R.benjamini_hochberg(p, 0.5).sum() == 10  # 0.216 <= 0.5
    # NaN p-values (latents not judged) take no part: the same two out of the finite ten
    got = R.benjamini_hochberg(np.r_[np.nan, p[::-1], np.nan], 0.05)
    assert np.flatnonzero(got).tolist() == [9, 10]
    assert not R.benjamini_hochberg(np.full(3, np.nan), 0.05).any()
    with pytest.raises(ValueError, match="q must be"):
        R.benjamini_hochberg(p, 0.0)
