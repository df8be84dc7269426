"""Notebook 08's measures against cases with known answers: the two-stage bootstrap, the shuffled control, the
positional table, the token-identity scorers on token latents, and the parameter checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rsae_utils.autointerp.examples import SparseActs
from rsae_utils.autointerp.stats import auroc, auroc_replicates, hierarchical_ci
from rsae_utils.autointerp.synthetic import synthetic_sparse_acts
from rsae_utils.errors import ParameterError
from rsae_utils.params import resolve
from rsae_utils.studies.critique import positional_table as PT
from rsae_utils.studies.critique import run as C
from rsae_utils.studies.critique import tables as T
from rsae_utils.studies.critique.positional import from_sparse

P = dict(
    boundary="both",
    n_perm=49,
    n_levels=2,
    max_lag=4,
    alpha=0.05,
    min_excess=0.1,
    min_firing_rate=0.0,
    rate_bins=8,
    rate_min_expected=2.0,
    min_tv=0.1,
    fdr_q=0.05,
    boundary_min_share=0.9,
    window_len=32,
    max_contexts=None,
    n_latents=6,
    min_examples=14,
    n_explain=4,
    explain_pool=8,
    n_bins=2,
    per_bin=4,
    n_negatives=8,
    top_k_tokens=10,
    mark_frac=0.3,
    single_token_n=1,
    single_token_threshold=0.9,
    intruder_trials=4,
    intruder_real=3,
    n_neighbours=2,
    example_boot=40,
    duplicate_threshold=0.9,
    seed=0,
)


@pytest.fixture(scope="module")
def sp():
    """Latents 0..3 fire on tokens 0..3, 4..5 at random, 6 only at position 0 (boundary), 7 only at position 5."""
    base = synthetic_sparse_acts(n_seq=48, ctx=64, n_token_latents=4, n_random_latents=2, random_rate=0.05, seed=1)
    at5 = np.arange(base.n_seq) * base.ctx + 5
    return SparseActs(
        tokens=base.tokens,
        window_len=32,
        n_latents=8,
        flat=np.r_[base.flat, at5],
        latent=np.r_[base.latent, np.full(at5.size, 7)],
        value=np.r_[base.value, np.full(at5.size, 1.5, dtype=np.float32)],
    )


def test_auroc_replicates_match_the_point_estimate():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40), np.zeros(60)]
    assert np.all(auroc_replicates(y, y + 0.0, 30, rng) == 1.0)  # perfect separation survives every resample
    s = rng.normal(size=100) + 0.8 * y
    reps = auroc_replicates(y, s, 400, rng)
    assert reps.shape == (400,) and np.all((reps >= 0) & (reps <= 1))
    assert abs(reps.mean() - auroc(y, s)) < 0.02 and 0.01 < reps.std() < 0.1
    assert np.isnan(auroc_replicates(np.ones(5), np.arange(5.0), 10, rng)).all()
    again = auroc_replicates(y, s, 5, np.random.default_rng(3))
    assert np.array_equal(again, auroc_replicates(y, s, 5, np.random.default_rng(3)))


def test_hierarchical_ci_contains_the_estimate_and_drops_missing_latents():
    rng = np.random.default_rng(1)
    point = rng.uniform(0.5, 0.9, 30)
    reps = point[:, None] + rng.normal(0, 0.05, (30, 50))
    ci = hierarchical_ci(np.r_[point, np.nan], np.r_[reps, np.full((1, 50), np.nan)], n_boot=500, seed=0)
    assert ci.n_latents == 30 and ci.estimate == pytest.approx(point.mean())
    assert 0 <= ci.lo < ci.estimate < ci.hi <= 1
    # more example noise, wider interval; no variation at all, no width
    wide = hierarchical_ci(point, point[:, None] + rng.normal(0, 0.3, (30, 50)), n_boot=500, seed=0)
    assert wide.hi - wide.lo > ci.hi - ci.lo
    flat = hierarchical_ci(np.full(10, 0.7), np.full((10, 20), 0.7), n_boot=100)
    assert flat.lo == pytest.approx(0.7) and flat.hi == pytest.approx(0.7)
    assert hierarchical_ci([np.nan], np.zeros((1, 3))).n_latents == 0


def test_shuffled_positions_permute_within_contexts(sp):
    pa = from_sparse(sp)
    for keep in (True, False):
        sh = PT.shuffled_positions(pa, keep_boundary=keep, rng=np.random.default_rng(0))
        assert sh.value.size == pa.value.size
        for lat in range(pa.n_latents):  # every (latent, context) keeps its multiset of values
            a = pa.block(lat, lat + 1)
            b = sh.block(lat, lat + 1)
            assert sorted(zip(a.context, a.value)) == sorted(zip(b.context, b.value))
        at0 = sh.block(6, 7)
        assert (at0.pos == 0).all() == keep


def test_positional_table_finds_the_positional_and_the_boundary_latent(sp):
    tab = PT.positional_table(sp, P, {"model": "m", "variant": "v", "layer": 0})
    obs = tab[~tab.control].set_index(["boundary", "latent"])
    assert obs.loc[("exclude", 7), "positional"] and obs.loc[("include", 7), "positional"]
    assert obs.loc[("include", 6), "boundary_latent"] and obs.loc[("include", 6), "positional"]
    assert obs.loc[("exclude", 7), "peak_position"] == 5 and obs.loc[("include", 6), "peak_position"] == 0
    assert obs.loc[("exclude", 7), "positional_fdr"] and obs.loc[("include", 6), "positional_fdr"]
    # token and random latents: position plays no part, so none survives the false-discovery correction
    assert not obs.loc[("exclude", [0, 1, 2, 3, 4, 5]), "positional_fdr"].any()
    # a latent that fires only at position 0 has nothing left to judge once the boundary is excluded
    assert ("exclude", 6) not in obs.index or not obs.loc[("exclude", 6), "judged"]
    ctl = tab[tab.control].set_index(["boundary", "latent"])
    assert not ctl.loc[("exclude", 7), "positional"] and not ctl.loc[("include", 6), "positional"]
    assert (ctl.judged == obs.judged.reindex(ctl.index)).all()  # shuffling keeps every latent's fires
    # the earlier eta^2 rule is still there for comparison: it finds the deterministic position-5 latent too
    assert obs.loc[("exclude", 7), "positional_eta2"]
    summary = T.positional_summary(tab)
    assert set(summary.boundary) == {"exclude", "include"}
    for col in ("positional_share", "control_share", "control_test_share", "positional_share_eta2"):
        assert summary[col].between(0, 1).all(), col
    assert (summary.control_share <= summary.control_test_share + 1e-12).all()  # the floor only removes flags
    assert (summary.n_positional_fdr <= summary.n_judged).all()
    top = T.top_positional(tab, 1, "exclude")
    assert list(top.latent) == [7]


def test_positional_table_retests_random_halves_of_the_contexts(sp):
    """Each view, observed and shuffled, retested on 3 random halves of 4 blocks of contexts: the position-5 latent
    stays positional in every observed half, and the summary's spread over halves comes from them."""
    halves: list = []
    p = {**P, "window_blocks": 4, "window_halves": 3}
    tab = PT.positional_table(sp, p, {"model": "m", "variant": "v", "layer": 0}, halves)
    h = pd.DataFrame(halves)
    assert len(h) == 2 * 2 * 3 and set(h.half) == {0, 1, 2}
    assert (h[~h.control].n_positional >= 1).all() and (h.n_positional <= h.n_judged).all()
    summary = T.positional_summary(tab, h)
    assert (summary.n_halves == 3).all() and (summary.excess_window_sd >= 0).all()
    assert PT.positional_table(sp, P).equals(PT.positional_table(sp, p))  # the halves leave the table alone
    with pytest.raises(ParameterError, match="'window_blocks'"):
        PT.positional_table(sp, {**p, "window_blocks": 10_000}, halves=[])


def test_positional_table_refuses_more_bins_than_positions(sp):
    with pytest.raises(ParameterError, match="'rate_bins'.*63"):
        PT.positional_table(sp, {**P, "rate_bins": 64})


def test_scorer_latents_on_token_latents(sp):
    W_dec = torch.eye(8) + 0.01 * torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    lat, ids, reps = C.scorer_latents(sp, W_dec, P, {"model": "m", "variant": "v", "layer": 0})
    assert set(lat.scorer) == set(C.SERIES) and set(reps) == set(C.SERIES)
    assert all(r.shape == (ids.size, P["example_boot"]) for r in reps.values())
    assert lat.auroc.dropna().between(0, 1).all()
    tok = lat[lat.latent.isin([0, 1, 2, 3])]
    assert tok.single_token.all() and (tok.top_token_share == 1).all()
    for series in ("token-baseline detection", "single-token detection", "active-token"):
        assert (tok[tok.scorer == series].auroc == 1.0).all(), series
    assert (tok[tok.scorer == "active-token"].precision == 1.0).all()
    # tables over one SAE: the interval holds the estimate; a scorer identical to its reference has gap 0
    scores = T.scorer_summary(lat, {("v", 0): (ids, reps)}, n_boot=200)
    assert (scores.auroc_lo <= scores.auroc + 1e-12).all() and (scores.auroc <= scores.auroc_hi + 1e-12).all()
    assert scores[scores.scorer.isin(C.SCORERS)].reference.notna().all()
    single = T.single_token_summary(lat)
    assert single.single_token_share.iloc[0] == pytest.approx(tok.latent.nunique() / ids.size)


def test_parameter_checks_name_the_parameter():
    cfg = resolve("08_critique", "smoke")
    assert cfg.boundary == "both" and resolve("08_critique", "default").n_latents <= 100
    for overrides, name in [
        ({"alpha": 0.001}, "alpha"),
        ({"boundary": "drop"}, "boundary"),
        ({"explain_pool": 1}, "explain_pool"),
        ({"min_examples": 2}, "min_examples"),
        ({"variants": ["random"]}, "variants"),
    ]:
        with pytest.raises(ParameterError, match=name):
            resolve("08_critique", "smoke", overrides)


def _token_info_by_pandas(sp: SparseActs, include_boundary: bool) -> pd.DataFrame:
    """An independent pandas groupby of the same per-latent token and position info (the earlier implementation)."""
    seq, pos = np.divmod(sp.flat, sp.ctx)
    keep = pos > 0 if not include_boundary else np.ones(pos.size, dtype=bool)
    df = pd.DataFrame(
        {"latent": sp.latent[keep], "token": sp.tokens[seq[keep], pos[keep]], "pos": pos[keep], "value": sp.value[keep]}
    ).astype({"value": np.float64})
    total = df.groupby("latent").value.sum()
    by_tok = df.groupby(["latent", "token"]).value.sum().sort_values(ascending=False, kind="stable")
    top = by_tok.groupby(level=0).head(1).reset_index(level=1)
    peak = df.groupby(["latent", "pos"]).value.sum().groupby(level=0).idxmax().map(lambda t: t[1])
    out = pd.DataFrame(
        {"n_active": df.groupby("latent").size(), "top_token": top.token, "top_token_mass_share": top.value / total}
    )
    return out.assign(peak_position=peak).rename_axis("latent").reset_index()


@pytest.mark.parametrize("include_boundary", [True, False])
def test_latent_token_info_matches_a_pandas_groupby_ties_included(include_boundary):
    rng = np.random.default_rng(3)
    n_seq, ctx, n_lat = 40, 16, 30
    flat = rng.choice(n_seq * ctx, size=(n_lat, 120)).ravel()
    latent = np.repeat(np.arange(n_lat), 120)
    keep = latent != 7  # a dead latent: absent from the table
    tokens = rng.integers(0, 12, size=(n_seq, ctx))
    value = rng.choice([0.5, 1.0, 2.0], size=flat.size).astype(np.float32)  # exact sums, so ties happen
    sp = SparseActs(tokens, 8, n_lat, flat[keep], latent[keep], value[keep])
    got = PT.latent_token_info(sp, include_boundary)
    want = _token_info_by_pandas(sp, include_boundary)
    assert 7 not in set(got.latent) and len(got) == n_lat - 1
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want[got.columns].reset_index(drop=True), check_dtype=False
    )
