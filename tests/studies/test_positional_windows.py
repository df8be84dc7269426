"""The positional test rerun on random halves of the contexts: with every block kept it is the firing-rate test
itself, halves keep its level (where bootstrap draws would not), and the spread over halves estimates the spread of
the share across independent sets of contexts (a known answer by simulation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rsae_utils.studies.critique import positional_rate as R
from rsae_utils.studies.critique.positional import PositionalActs
from rsae_utils.studies.critique.positional_windows import block_sums, half_sample_counts, weighted_test
from rsae_utils.studies.critique.tables import window_spread

N_CTX, CTX, L = 80, 64, 300
ALPHA, MIN_TV = 0.01, 0.1


def _acts(rng: np.random.Generator, positional_share: float = 0.2) -> PositionalActs:
    """L latents firing at 3% of positions, iid; the first ``positional_share`` of them only in the context's
    second half (at 6%), plus runs of 4 fires in 5% of the contexts for every latent (bursts the null allows)."""
    fired = rng.random((L, N_CTX, CTX)) < 0.03
    n_pos = int(positional_share * L)
    late = rng.random((n_pos, N_CTX, CTX)) < 0.06
    late[:, :, : CTX // 2] = False
    fired[:n_pos] = late
    starts = rng.integers(0, CTX - 4, (L, N_CTX))
    burst = rng.random((L, N_CTX)) < 0.05
    for i in range(4):
        lat, c = np.nonzero(burst)
        fired[lat, c, starts[lat, c] + i] = True
    lat, c, p = np.nonzero(fired)
    return PositionalActs(lat, c, p, np.ones(lat.size), L, N_CTX, CTX, np.arange(L))


def _share(rt: R.RateTest) -> float:
    return float((rt.judged & R.is_rate_positional(rt, ALPHA, MIN_TV)).sum() / rt.judged.sum())


def test_all_blocks_give_the_rate_test_exactly():
    pa = _acts(np.random.default_rng(0))
    rt, s = R.rate_test(pa, 8, 2.0), block_sums(pa, 8, 10)
    w = weighted_test(s, np.ones(10))
    for name in ("n_fires", "counts", "chi2", "dispersion", "tv", "peak_ratio", "mi"):
        np.testing.assert_array_equal(getattr(rt, name), getattr(w, name), err_msg=name)
    np.testing.assert_array_equal(rt.p, w.p)
    assert (rt.judged == w.judged).all()
    with pytest.raises(ValueError, match="one entry per block"):
        weighted_test(s, np.ones(9))
    with pytest.raises(ValueError, match="n_blocks"):
        block_sums(pa, 8, N_CTX + 1)


def test_halves_keep_the_level_and_their_spread_matches_independent_contexts():
    """On one data set the halves' mean share is near the full data's (a bootstrap with repeated contexts would
    inflate it); over 12 independent data sets the share's sd is what the halves of one data set estimate."""
    rng = np.random.default_rng(1)
    shares, half_sd = [], []
    for _ in range(12):
        pa = _acts(rng)
        full = _share(R.rate_test(pa, 8, 2.0))
        c = half_sample_counts(block_sums(pa, 8, 20), 20, seed=3, alpha=ALPHA, min_tv=MIN_TV)
        half = c[:, 1] / c[:, 0]
        assert abs(half.mean() - full) < 0.04  # 0.2 true positives, found with half the data's power
        shares.append(full)
        half_sd.append(half.std(ddof=1))
    sd = float(np.std(shares, ddof=1))
    assert 0.5 * sd < float(np.mean(half_sd)) < 2.0 * sd


def test_window_spread_pairs_observed_and_control_halves():
    rows = []
    for half, (obs, ctl) in enumerate([(10, 1), (14, 1), (12, 3)]):
        for control, n in ((False, obs), (True, ctl)):
            rows.append(
                {"model": "m", "variant": "v", "layer": 1, "boundary": "exclude", "control": control}
                | {"half": half, "n_judged": 100, "n_positional": n}
            )
    got = window_spread(pd.DataFrame(rows)).iloc[0]
    assert got.positional_share_window_sd == pytest.approx(np.std([0.10, 0.14, 0.12], ddof=1))
    assert got.excess_window_sd == pytest.approx(np.std([0.09, 0.13, 0.09], ddof=1))
    assert got.n_halves == 3
    assert window_spread(pd.DataFrame()).empty
