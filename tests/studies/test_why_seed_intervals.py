"""Intervals over SAE seeds (rsae_utils.studies.why.seed_intervals): known answers on simulated seed noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rsae_utils.studies.why.seed_intervals import fmt, interval, pooled_sd, seed_draws, seed_means


def _rows(true: np.ndarray, sd: float, n_seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"source": f"s{i}", "layer": 4, "seed": s, "ev": float(m + sd * rng.standard_normal()), "tag": "x"}
            for i, m in enumerate(true)
            for s in range(n_seeds)
        ]
    )


def test_pooled_sd_recovers_the_seed_noise_with_its_degrees_of_freedom():
    rng = np.random.default_rng(0)
    rows = _rows(rng.uniform(0.3, 0.9, 400), 0.01, 2, rng)
    p = pooled_sd(rows, ["source", "layer"], "ev")
    assert p.df == 400 and p.n_keys == 400
    assert p.sd == pytest.approx(0.01, rel=0.1)
    # One seed everywhere: no spread to pool.
    one = rows[rows.seed == 0]
    assert pooled_sd(one, ["source", "layer"], "ev").df == 0


def test_seed_means_average_numeric_columns_and_count_seeds():
    rows = pd.DataFrame(
        {"source": ["a", "a", "b"], "layer": [4, 4, 4], "seed": [0, 1, 0], "ev": [0.2, 0.4, 0.5], "tag": ["p"] * 3}
    )
    m = seed_means(rows, ["source", "layer"])
    assert list(m.source) == ["a", "b"]
    assert m.ev.tolist() == pytest.approx([0.3, 0.5])
    assert m.n_seeds.tolist() == [2, 1] and m.tag.tolist() == ["p", "p"]
    assert "seed" not in m


def test_draw_interval_has_students_t_width_for_one_key_among_many():
    """Each key's mean has sd s/sqrt(n); with the variance drawn from its chi2 the draws' 95% half-width is
    t(0.975, df) * s / sqrt(n) (here df = 3 keys x 2 extra seeds = 6: t = 2.447, not 1.96)."""
    rng = np.random.default_rng(1)
    rows = _rows(np.array([0.4, 0.5, 0.6]), 0.02, 3, rng)
    p = pooled_sd(rows, ["source", "layer"], "ev")
    draws = seed_draws(rows, ["source", "layer"], ["ev"], n_draws=20_000, seed=2)
    mean0 = seed_means(rows, ["source", "layer"]).ev.iloc[0]
    lo, hi = interval(draws, lambda d: d.ev.iloc[0])
    half = stats.t.ppf(0.975, p.df) * p.sd / np.sqrt(3)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.05)
    assert (lo + hi) / 2 == pytest.approx(mean0, abs=0.1 * half)


def test_intervals_cover_the_true_mean_and_a_contrast_at_the_nominal_rate():
    """Over simulated data sets with 2 seeds per SAE, the 95% intervals of one SAE's mean and of a difference
    between two SAEs cover the truth in 90-99% of the sets."""
    true = np.linspace(0.3, 0.8, 12)
    hit_one = hit_diff = 0
    n_sets = 200
    for k in range(n_sets):
        rng = np.random.default_rng(100 + k)
        rows = _rows(true, 0.015, 2, rng)
        draws = seed_draws(rows, ["source", "layer"], ["ev"], n_draws=300, seed=k)
        lo, hi = interval(draws, lambda d: d.ev.iloc[3])
        hit_one += lo <= true[3] <= hi
        lo, hi = interval(draws, lambda d: d.ev.iloc[7] - d.ev.iloc[2])
        hit_diff += lo <= true[7] - true[2] <= hi
    assert 0.90 <= hit_one / n_sets <= 0.99
    assert 0.90 <= hit_diff / n_sets <= 0.99


def test_a_one_seed_sae_borrows_the_pooled_spread_and_one_seed_tables_give_no_interval():
    rng = np.random.default_rng(3)
    rows = _rows(np.array([0.4, 0.5, 0.6, 0.7]), 0.02, 2, rng)
    rows = pd.concat([rows, pd.DataFrame([{"source": "wide", "layer": 4, "seed": 0, "ev": 0.45, "tag": "x"}])])
    draws = seed_draws(rows, ["source", "layer"], ["ev"], n_draws=4000, seed=0)
    wide = lambda d: float(d.loc[d.source == "wide", "ev"].iloc[0])  # noqa: E731
    two = lambda d: float(d.loc[d.source == "s0", "ev"].iloc[0])  # noqa: E731
    w_lo, w_hi = interval(draws, wide)
    t_lo, t_hi = interval(draws, two)
    assert w_lo < 0.45 < w_hi
    assert (w_hi - w_lo) / (t_hi - t_lo) == pytest.approx(np.sqrt(2), rel=0.1)  # one seed against two
    one = rows[rows.seed == 0]
    d1 = seed_draws(one, ["source", "layer"], ["ev"], n_draws=10)
    assert d1 == []
    assert fmt(0.4512, d1, wide, ".2f") == "0.45"
    assert fmt(0.4512, draws, wide, ".2f").startswith("0.45 [")


def test_rows_that_share_an_sae_move_together_and_count_once():
    """A baseline listed under two factors is one SAE: both rows get the same noise, and the pooled spread has one
    degree of freedom per SAE, not per row."""
    rng = np.random.default_rng(4)
    rows = _rows(np.array([0.4, 0.5, 0.6]), 0.02, 2, rng).assign(factor="width")
    twin = rows[rows.source == "s0"].assign(factor="embedding_scale")
    both = pd.concat([rows, twin], ignore_index=True)
    keys, sae = ["factor", "source", "layer"], ["source", "layer"]
    draws = seed_draws(both, keys, ["ev"], n_draws=50, seed=0, sae_keys=sae)
    for d in draws:
        a = d[(d.source == "s0") & (d.factor == "width")].ev.iloc[0]
        b = d[(d.source == "s0") & (d.factor == "embedding_scale")].ev.iloc[0]
        assert a == b
    assert pooled_sd(both.drop_duplicates([*sae, "seed"]), sae, "ev").df == 3


def test_a_share_near_zero_keeps_its_interval_inside_its_range():
    rng = np.random.default_rng(5)
    rows = _rows(np.array([0.001, 0.002, 0.003]), 0.01, 2, rng)
    draws = seed_draws(rows, ["source", "layer"], ["ev"], n_draws=500)
    text = fmt(0.1, draws, lambda d: 100 * d.ev.iloc[0], ".1f", clip=(0.0, 100.0))
    lo = float(text.split("[")[1].split(",")[0])
    assert lo == 0.0 and float(text.split(", ")[1].rstrip("]")) > 0
