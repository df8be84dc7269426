"""The claims table (notebook 10): each verdict rule at its edges, the intervals, the readers on small synthetic tables
with known answers, missing inputs giving "not run", the markdown, and notebook 10's parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from claims_helpers import (
    EXPECTED,
    write_all,
    write_auroc,
    write_latents,
    write_llm_gap,
    write_mmcs,
    write_positional,
    write_seeds,
)

from rsae_utils import nbrun
from rsae_utils.claims import CLAIMS, NOT_RUN, Options, build_claims, claims_markdown, readme_block
from rsae_utils.claims import rules as R
from rsae_utils.claims.inputs import Inputs
from rsae_utils.claims.interp import entropy_random_lower, llm_beyond_tokens, positional_trained
from rsae_utils.errors import ParameterError
from rsae_utils.params import NOTEBOOKS, resolve

OPT = Options(n_boot=200)


def _v(verdict):
    return verdict.verdict


# ------------------------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (-0.01, 0.02, R.REPRODUCED),
        (-0.05, 0.05, R.REPRODUCED),  # the margin itself is inside
        (0.06, 0.2, R.NOT_REPRODUCED),
        (-0.3, -0.051, R.NOT_REPRODUCED),
        (-0.2, 0.2, R.NOT_DECIDABLE),  # contains 0 but too wide: not evidence of no difference
        (0.01, 0.08, R.NOT_DECIDABLE),
        (math.nan, 0.0, R.NOT_DECIDABLE),
    ],
)
def test_similar_is_an_equivalence_test(lo, hi, expected):
    assert _v(R.similar(lo, hi, 0.05)) == expected


def test_near_is_similar_to_a_level():
    assert _v(R.near(0.46, 0.54, 0.5, 0.05)) == R.REPRODUCED
    assert _v(R.near(0.6, 0.7, 0.5, 0.05)) == R.NOT_REPRODUCED
    assert _v(R.near(0.4, 0.6, 0.5, 0.05)) == R.NOT_DECIDABLE


@pytest.mark.parametrize(
    "lo, hi, expected, qualifier",
    [
        (-0.5, -0.05, R.REPRODUCED, ""),  # the whole interval at or beyond the minimum effect (inclusive)
        (-0.5, -0.01, R.NOT_DECIDABLE, ""),  # excludes 0 but not a decrease smaller than the minimum effect
        (-0.5, 0.0, R.NOT_DECIDABLE, ""),
        (-0.05, 0.1, R.NOT_DECIDABLE, ""),  # lo at -margin: a decrease of the margin is still possible
        (-0.03, 0.02, R.NOT_REPRODUCED, R.NEGLIGIBLE),  # inside +- the minimum effect
        (-0.04, -0.01, R.NOT_REPRODUCED, R.NEGLIGIBLE),  # the claimed direction, but smaller than the effect
        (-0.04, 0.1, R.NOT_REPRODUCED, ""),  # no decrease of the margin, an increase not excluded
        (0.2, 0.4, R.NOT_REPRODUCED, R.OPPOSITE),
        (0.01, 0.03, R.NOT_REPRODUCED, R.NEGLIGIBLE),  # the other side, but inside the margin: negligible first
        (math.nan, math.nan, R.NOT_DECIDABLE, ""),
    ],
)
def test_below_needs_the_minimum_effect(lo, hi, expected, qualifier):
    v = R.below(lo, hi, 0.05)
    assert (v.verdict, v.qualifier) == (expected, qualifier)
    assert v.label == (f"{expected} ({qualifier})" if qualifier else expected)


@pytest.mark.parametrize(
    "lo, hi, expected, qualifier",
    [
        (0.05, 0.5, R.REPRODUCED, ""),
        (0.01, 0.5, R.NOT_DECIDABLE, ""),
        (0.0, 0.5, R.NOT_DECIDABLE, ""),
        (-0.1, 0.05, R.NOT_DECIDABLE, ""),
        (-0.1, 0.04, R.NOT_REPRODUCED, ""),
        (-0.02, 0.03, R.NOT_REPRODUCED, R.NEGLIGIBLE),
        (-0.4, -0.2, R.NOT_REPRODUCED, R.OPPOSITE),
        (-0.4, -0.01, R.NOT_REPRODUCED, R.OPPOSITE),
    ],
)
def test_above_mirrors_below(lo, hi, expected, qualifier):
    for v in (R.above(lo, hi, 0.05), R.below(-hi, -lo, 0.05), R.above(lo + 0.5, hi + 0.5, 0.05, ref=0.5)):
        assert (v.verdict, v.qualifier) == (expected, qualifier), v


def test_levels_and_band():
    assert _v(R.at_least(0.5, 0.6, 0.5)) == R.REPRODUCED
    assert _v(R.at_least(0.3, 0.49, 0.5)) == R.NOT_REPRODUCED
    assert _v(R.at_least(0.4, 0.6, 0.5)) == R.NOT_DECIDABLE
    assert _v(R.at_most(0.1, 0.5, 0.5)) == R.REPRODUCED
    assert _v(R.at_most(0.51, 0.6, 0.5)) == R.NOT_REPRODUCED
    assert _v(R.at_most(0.4, 0.6, 0.5)) == R.NOT_DECIDABLE
    assert _v(R.in_band(0.2, 0.5, 0.2, 0.5)) == R.REPRODUCED
    assert _v(R.in_band(0.01, 0.05, 0.2, 0.5)) == R.NOT_REPRODUCED
    assert _v(R.in_band(0.6, 0.7, 0.2, 0.5)) == R.NOT_REPRODUCED
    assert _v(R.in_band(0.1, 0.3, 0.2, 0.5)) == R.NOT_DECIDABLE


def test_scale_gate_keeps_what_the_number_says():
    v = R.similar(-0.01, 0.01, 0.05)
    assert R.scale_gate(True, "x", v) == v
    gated = R.scale_gate(False, "the scorer is at chance", v)
    assert gated.verdict == R.NOT_DECIDABLE and "the scorer is at chance" in gated.reason
    assert "would give 'reproduced'" in gated.reason


# -------------------------------------------------------------------------------------------------- intervals
def test_bootstrap_known_answers():
    const = R.bootstrap([np.full(5, 0.3)], lambda g: g[0].mean(), 100)
    assert const == pytest.approx((0.3, 0.3, 0.3))
    x = np.random.default_rng(0).normal(1.0, 1.0, 400)
    est, lo, hi = R.bootstrap([x], lambda g: g[0].mean(), 500, seed=1)
    assert lo < est < hi and hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.2)
    assert R.bootstrap([x], lambda g: g[0].mean(), 50, seed=3) == R.bootstrap([x], lambda g: g[0].mean(), 50, seed=3)
    # stratified: each group keeps its size, so a difference of two constant groups has no spread
    assert R.bootstrap([np.ones(3), np.zeros(7)], lambda g: g[0].mean() - g[1].mean(), 50) == pytest.approx((1, 1, 1))
    assert all(math.isnan(v) for v in R.bootstrap([np.array([])], lambda g: 0.0, 10))


def test_normal_intervals_combine():
    assert R.z_value(0.95) == pytest.approx(1.959964, abs=1e-5)
    est, lo, hi = R.normal_ci(0.5, 0.1)
    assert R.sd_from_ci(lo, hi) == pytest.approx(0.1)
    est, lo, hi = R.mean_of_independent([0.4, 0.6], [0.1, 0.1])
    assert est == pytest.approx(0.5) and hi - est == pytest.approx(1.959964 * math.sqrt(0.02) / 2, rel=1e-5)


def _pairs(n: int, value) -> tuple[list[int], list[int], list[float]]:
    a, b = zip(*[(i, j) for i in range(n) for j in range(i + 1, n)], strict=True)
    return list(a), list(b), [float(value(i, j)) for i, j in zip(a, b, strict=True)]


def test_seed_pair_bootstrap_resamples_seeds_not_pairs():
    """One odd seed among 4: every pair with seed 3 reads 1, the others 0. The estimate is the mean over the 6 pairs
    (0.5); a draw without seed 3 (probability (3/4)^4 = 0.32) reads 0, one with seed 3 and one other seed (42 of 256
    draws) reads 1, so the 95% interval is [0, 1]. A bootstrap over the 6 pairs would give a far narrower one."""
    a, b, v = _pairs(4, lambda i, j: float(3 in (i, j)))
    est, lo, hi = R.seed_pair_bootstrap([(a, b, v)], lambda m: m[0], n_boot=4000, seed=1)
    assert (est, lo, hi) == (0.5, 0.0, 1.0)
    _, plo, phi = R.bootstrap([np.array(v)], lambda g: g[0].mean(), n_boot=4000, seed=1)
    assert phi - plo < 0.9
    # Equal pairs give a point interval; two groups are resampled apart and combined by ``stat``.
    same = _pairs(5, lambda i, j: 0.3)
    assert R.seed_pair_bootstrap([same], lambda m: m[0], n_boot=200) == pytest.approx((0.3, 0.3, 0.3))
    est, lo, hi = R.seed_pair_bootstrap([same, (a, b, v)], lambda m: m[0] - m[1], n_boot=2000)
    assert est == pytest.approx(-0.2) and lo == pytest.approx(-0.7) and hi == pytest.approx(0.3)
    # A seed is never compared with itself: all 4 draws of one seed give no pair, and are dropped.
    assert math.isnan(R._pair_mean({(0, 1): 1.0}, np.array([1, 1, 1])))
    assert R._pair_mean({(0, 1): 1.0}, np.array([1, 0, 1])) == 1.0
    with pytest.raises(ValueError, match="seed pairs"):
        R.seed_pair_bootstrap([([0, 0], [1, 2], [0.1, 0.2])], lambda m: m[0])  # pair 1-2 missing


def test_two_stage_bootstrap_adds_the_windows_variance():
    """100 latents all at 1.0: over latents alone the mean does not move; with each latent's value moving by sd 0.5
    over its windows, the mean's interval is 1 +- 1.96 x 0.5 / 10. A 0/1 flag that holds in a share p of the
    window resamples adds p (1 - p) and stays centred on the observed share."""
    rows = np.c_[np.ones(100), np.full(100, 0.5)]
    est, lo, hi = R.two_stage_bootstrap([rows], "sd", lambda g: g[0].mean(), n_boot=4000, seed=2)
    assert est == 1.0 and lo == pytest.approx(1 - 0.098, abs=0.012) and hi == pytest.approx(1 + 0.098, abs=0.012)
    flat = R.two_stage_bootstrap([np.c_[np.ones(100), np.zeros(100)]], "sd", lambda g: g[0].mean(), n_boot=200)
    assert flat == (1.0, 1.0, 1.0)
    flags = np.c_[np.r_[np.ones(50), np.zeros(50)], np.full(100, 0.5)]
    est, lo, hi = R.two_stage_bootstrap([flags], "share", lambda g: g[0].mean(), n_boot=4000, seed=2)
    # latents: sd 0.05; windows: 0.5 / 10 = 0.05; together 0.0707
    assert est == 0.5 and (hi - lo) / 2 == pytest.approx(1.96 * math.sqrt(0.05**2 + 0.05**2), rel=0.1)
    with pytest.raises(ValueError, match="'sd' or 'share'"):
        R.within_draw("normal")


def test_entropy_claims_widen_with_the_windows_spread(tmp_path):
    widths = []
    for sd in (0.0, 1.0):
        write_latents(tmp_path, window_sd=sd)
        r = entropy_random_lower(Inputs(tmp_path, OPT))
        widths.append(r.hi - r.lo)
        assert "explainer windows" in r.interval_over
    assert widths[1] > 1.5 * widths[0]


def test_positional_claims_add_the_spread_over_context_halves(tmp_path):
    """Every cell's share beyond the control moving by sd 0.05 over halves of the contexts, with equal judged counts
    over n cells, adds 0.05^2 / n to the pooled share's variance."""
    widths = []
    for sd in (0.0, 0.05):
        write_positional(tmp_path, window_sd=sd)
        r = positional_trained(Inputs(tmp_path, OPT))
        widths.append((r.hi - r.lo) / (2 * R.z_value(0.95)))
        assert "random halves of the held-out contexts" in r.interval_over
    n_cells = 2  # write_positional: the trained model at 2 layers
    assert widths[1] == pytest.approx(math.sqrt(widths[0] ** 2 + 0.05**2 / n_cells), rel=0.02)


@pytest.mark.parametrize("n_latents", [10, 1])
def test_llm_beyond_tokens_reads_cells_of_one_latent_as_undecided(tmp_path, n_latents):
    """The gap's mean is reported either way; with one latent per cell there is no interval, so the verdict is not
    decidable rather than "not run"."""
    write_all(tmp_path)
    write_llm_gap(tmp_path, n_latents=n_latents)
    r = llm_beyond_tokens(Inputs(tmp_path, OPT))
    assert r.value == pytest.approx(-0.01) and r.verdict.verdict != NOT_RUN
    assert math.isnan(r.lo) == (n_latents == 1) and f"{n_latents}-{n_latents} latents each" in r.interval_over
    if n_latents == 1:
        assert r.verdict.verdict == R.NOT_DECIDABLE


def test_seed_claims_bootstrap_over_seeds(tmp_path):
    """The seed claims' interval comes from the seed bootstrap of their pairs (write_seeds: 3 seeds, pairs
    s - 0.01, s, s + 0.01), and says so."""
    from rsae_utils.claims.inputs import Inputs
    from rsae_utils.claims.toy_sae import seed_shared

    write_seeds(tmp_path)
    r = seed_shared(Inputs(tmp_path, OPT))
    t = pd.read_csv(tmp_path / "07_seed_stability.csv")
    c = t[(t.architecture == "topk") & (t.R == 2) & (t.threshold == 0.7)]
    want = R.seed_pair_bootstrap(
        [(c.seed_a, c.seed_b, c.shared_fraction)], lambda m: m[0], OPT.n_boot, OPT.seed, OPT.ci_level
    )
    assert (r.value, r.lo, r.hi) == pytest.approx(want) and r.value == pytest.approx(0.35)
    assert r.interval_over.startswith("SAE seeds (3; bootstrap over seeds")


def test_range_rows_get_their_own_column(tmp_path):
    figs = tmp_path / "figures"
    write_all(figs)
    md = claims_markdown(build_claims(figs, OPT, root=tmp_path), tmp_path, tmp_path)
    head = md.splitlines()[0]
    assert "range [min, max] (not an interval)" in head
    row = next(line for line in md.splitlines() if line.startswith("| A random 2-layer ReLU MLP"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    value, over, rng = cells[3], cells[4], cells[5]
    assert "[" not in value.split("<br>")[0] and over == "none (one run)" and rng.startswith("[")
    assert "range over the" in rng


# ---------------------------------------------------------------------------------------------------- readers
def test_synthetic_tables_give_the_known_verdicts(tmp_path):
    figs = tmp_path / "figures"
    write_all(figs)
    table = build_claims(figs, OPT, root=tmp_path)
    assert list(table.id) == [c.id for c in CLAIMS] and set(table.id) == set(EXPECTED)
    got = dict(zip(table.id, table.verdict))
    assert got == EXPECTED, {k: (got[k], EXPECTED[k]) for k in got if got[k] != EXPECTED[k]}
    done = table[table.verdict != NOT_RUN]
    ranged = done.range_over.fillna("") != ""
    # Every measured claim says what its spread covers, as an interval or as a range, never both.
    assert done.value.notna().all() and ((done.interval_over.fillna("") != "") ^ ranged).all()
    iv, rg = done[~ranged], done[ranged]
    assert (iv.lo <= iv.value + 1e-12).all() and (iv.value <= iv.hi + 1e-12).all()
    assert set(rg.id) == {"toy-superposition", "frontier-toy", "frontier-embedding", "why-gap-closed"} & set(done.id)
    assert rg.lo.isna().all() and rg.hi.isna().all() and rg.range_over.str.startswith("range over").all()
    assert (rg.range_lo <= rg.value + 1e-12).all() and (rg.value <= rg.range_hi + 1e-12).all()
    assert done.figure.str.startswith("figures/").all()  # a figure link for every measured claim


def test_missing_inputs_give_not_run_naming_the_notebook(tmp_path):
    table = build_claims(tmp_path / "figures", OPT, profile="smoke", root=tmp_path)
    assert (table.verdict == NOT_RUN).all()
    for _, r in table.iterrows():
        assert r.notebook.split(" ")[0] in r.reason and "smoke" in r.reason
        assert r.figure == f"notebooks/{r.notebook.split(' ')[0]}.py"


def test_a_table_without_a_needed_column_or_rows_is_not_run(tmp_path):
    figs = tmp_path / "figures"
    write_all(figs)
    (figs / "08_positional.csv").write_text("variant,layer\ntrained,0\n")
    write_auroc(figs, llm={}, control=None)  # the token baseline only: no LLM claim can be read
    got = build_claims(figs, OPT).set_index("id")
    assert (
        got.loc["positional-trained", "verdict"] == NOT_RUN
        and "lacks the columns" in got.loc["positional-trained", "reason"]
    )
    assert (
        got.loc["autointerp-detection", "verdict"] == NOT_RUN
        and "only the token baseline" in got.loc["autointerp-detection", "reason"]
    )
    assert got.loc["token-scorer-similar", "verdict"] == R.NOT_REPRODUCED


def _one(tmp_path, claim_id, opt=OPT):
    return build_claims(tmp_path / "figures", opt).set_index("id").loc[claim_id]


def test_mmcs_band_edges(tmp_path):
    figs = tmp_path / "figures"
    write_mmcs(figs, {"raw": [0.5, 0.8, 0.95, 0.93, 0.92]})  # high, but the sweep's end is not lower: no band
    assert _one(tmp_path, "mmcs-band-raw").verdict == R.NOT_REPRODUCED
    write_mmcs(figs, {"raw": [0.5, 0.8, 0.7, 0.6, 0.2]}, dict_sizes=(128, 256))  # low, but small dictionaries
    r = _one(tmp_path, "mmcs-band-raw")
    assert r.verdict == R.NOT_DECIDABLE and "4096" in r.reason
    write_mmcs(figs, {"gaussian": [0.2, 0.9, 0.95, 0.9, 0.2]})
    assert _one(tmp_path, "mmcs-control").verdict == R.NOT_REPRODUCED


def test_seed_claims_are_gated_on_dead_latents(tmp_path):
    write_seeds(tmp_path / "figures", dead=0.7)
    r = _one(tmp_path, "seed-shared")
    assert r.verdict == R.NOT_DECIDABLE and "70%" in r.reason and "'reproduced'" in r.reason
    assert _one(tmp_path, "seed-shared", Options(n_boot=200, max_dead_fraction=0.8)).verdict == R.REPRODUCED
    write_seeds(tmp_path / "figures", shared={("topk", 2, 32): 0.35, ("topk", 4, 32): 0.2})
    got = build_claims(tmp_path / "figures", OPT).set_index("id")
    assert got.loc["seed-wider", "verdict"] == R.REPRODUCED
    assert got.loc["seed-relu-vs-topk", "verdict"] == NOT_RUN  # no ReLU group
    # the narrow SAEs share 4%: a decrease of the margin (5 points) cannot happen, whatever the number says
    write_seeds(tmp_path / "figures", shared={("topk", 2, 32): 0.04, ("topk", 4, 32): 0.02})
    got = build_claims(tmp_path / "figures", OPT).set_index("id")
    assert got.loc["seed-shared", "verdict"] == R.NOT_REPRODUCED
    r = got.loc["seed-wider"]
    assert (r.verdict, r.qualifier) == (R.NOT_DECIDABLE, R.OUT_OF_REACH)
    assert "share 0.04" in r.reason and "'reproduced' is out of reach" in r.reason


def test_seed_claims_report_live_latents_and_relu_rests_on_the_same_partner_share(tmp_path):
    """ReLU shares far more latents the paper's way (0.5 against 0.35), but with the same partner required, of
    live latents, only 0.21 against 0.2: the claim reads the latter. The live counts reach every seed claim's
    description, and the wider SAE's live share is reported next to its all-latent one."""
    live = {("topk", 2, 32): (0.4, 0.2), ("topk", 4, 32): (0.45, 0.22), ("relu", 2, 32): (0.55, 0.19)}
    write_seeds(tmp_path / "figures", live=live)
    relu = _one(tmp_path, "seed-relu-vs-topk")
    assert relu.verdict == R.NOT_REPRODUCED and relu.value == pytest.approx(-0.01, abs=1e-9)
    assert "live latents shared with the same partner" in relu.measure and "paper's count" in relu.measure
    assert "0.15" in relu.measure  # the two-matching difference of all latents, 0.5 - 0.35
    shared = _one(tmp_path, "seed-shared")
    assert "of live latents 0.4, with the same decoder and encoder partner 0.2" in shared.measure
    assert "of live latents 0.05" in _one(tmp_path, "seed-wider").measure
    # a table from before the live columns: the same-partner share of all latents, and a note to rerun
    write_seeds(tmp_path / "figures")
    relu = _one(tmp_path, "seed-relu-vs-topk")
    assert "share of all latents shared with the same partner" in relu.measure
    assert relu.value == pytest.approx((0.5 - 0.35) / 2, abs=1e-9)
    assert "rerun notebook 07" in _one(tmp_path, "seed-shared").measure


def test_llm_at_chance_on_the_trained_model_is_not_decidable(tmp_path):
    write_auroc(tmp_path / "figures", llm={("detection", "trained"): 0.5, ("detection", "step0"): 0.5})
    r = _one(tmp_path, "autointerp-detection")
    assert r.verdict == R.NOT_DECIDABLE and "does not beat chance" in r.reason
    # the Control with no LLM rows falls back to the token baseline, says so, and calls the result built in
    write_auroc(tmp_path / "figures", control=None)
    r = _one(tmp_path, "control-chance")
    assert "no LLM scored the Control" in r.measure
    assert (r.verdict, r.qualifier) == (R.NOT_DECIDABLE, R.BY_CONSTRUCTION) and "fresh noise" in r.reason
    # an LLM at chance on the trained model cannot test the Control either
    write_auroc(tmp_path / "figures", llm={("detection", "trained"): 0.5, ("detection", "step0"): 0.5}, control=0.5)
    r = _one(tmp_path, "control-chance")
    assert r.verdict == R.NOT_DECIDABLE and r.qualifier != R.BY_CONSTRUCTION and "does not beat chance" in r.reason


def test_markdown_links_and_cells(tmp_path):
    figs = tmp_path / "figures"
    write_all(figs)
    table = build_claims(figs, OPT, root=tmp_path)
    md = claims_markdown(table, link_from=figs, root=tmp_path)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(table) and all(ln.count(" | ") >= 7 for ln in lines[2:])
    assert "(01_toy_superposition.png)" in md and "**reproduced**" in md and "**not run**" in md
    assert "**not reproduced** (negligible)" in md and "**not decidable at this scale** (by construction)" in md
    readme = claims_markdown(table, link_from=tmp_path, root=tmp_path)
    assert "(figures/01_toy_superposition.png)" in readme
    table.loc[0, "reason"] = "a | b"
    assert "a \\| b" in claims_markdown(table, link_from=figs, root=tmp_path)


# ----------------------------------------------------------------------------------------------- parameters
def test_nb10_parameters_are_validated():
    cfg = resolve("10_claims", "default")
    assert Options.from_mapping(cfg).auroc_margin == cfg.auroc_margin
    for over, name in [
        ({"auroc_margin": 0.0}, "auroc_margin"),
        ({"ci_level": 1.5}, "ci_level"),
        ({"mmcs_low": 0.95}, "mmcs_low"),
        ({"n_boot": 10}, "n_boot"),
    ]:
        with pytest.raises(ParameterError, match=name):
            resolve("10_claims", "smoke", over)


def test_notebook_10_does_not_pull_the_pipeline(tmp_dirs, monkeypatch):
    ran = []
    monkeypatch.setattr(nbrun, "run_notebook", lambda n, *a, **k: ran.append(n))
    assert set(NOTEBOOKS["10_claims"].after) >= {"03_sae_training", "07_seed_stability", "08_critique"}
    nbrun.run_many(["10_claims"], "smoke", {})
    assert ran == ["10_claims"]
    ran.clear()
    nbrun.run_many(["07_seed_stability"], "smoke", {})
    assert ran == ["03_sae_training", "07_seed_stability"]  # the others still pull theirs


@pytest.mark.parametrize(
    "trained, random, expected, qualifier",
    [
        ((20, 1), (2, 1), R.REPRODUCED, ""),  # 19% beyond the control against 1%
        ((10, 1), (30, 1), R.NOT_REPRODUCED, R.OPPOSITE),  # the random variants have more
        # the trained model has 1-2% beyond its control: 5 points fewer cannot happen, so nothing is decided
        ((2, 1), (20, 1), R.NOT_DECIDABLE, R.OUT_OF_REACH),
        ((3, 1), (3, 1), R.NOT_DECIDABLE, R.OUT_OF_REACH),
    ],
)
def test_random_variants_have_fewer_positional_latents_than_trained(tmp_path, trained, random, expected, qualifier):
    write_positional(tmp_path / "figures", trained=trained, random=random)
    r = _one(tmp_path, "positional-random")
    assert (r.verdict, r.qualifier if isinstance(r.qualifier, str) else "") == (expected, qualifier)
    assert r.value == pytest.approx((random[0] - random[1]) / 100 - (trained[0] - trained[1]) / 100)
    assert r.lo <= r.value <= r.hi


def test_readme_block_prefixes_only_relative_figure_links():
    md = "Generated by x.\n\n| a | b |\n|---|---|\n| c | [f.png](f.png) |\n| d | [w](https://e.org/p) |\n"
    got = readme_block(md)
    assert "| c | [f.png](figures/f.png) |" in got and "| d | [w](https://e.org/p) |" in got
    assert got.startswith("Generated by x.") and readme_block(md, "x/y").count("](x/y/f.png)") == 1


def test_seed_replicates_widen_the_intervals_by_their_between_seed_variance(tmp_path):
    """With notebook 07's seed replicates, a claim's interval adds the between-seed variance (sample variance over
    seeds) of each cell: known answer for the SAE-metric claim, whose cells are one SAE each."""
    import math

    from rsae_utils.claims.inputs import Inputs, Options
    from rsae_utils.claims.toy_sae import sae_metric_similar

    write_all(tmp_path)
    inp = Inputs(tmp_path, Options())
    before = sae_metric_similar(inp, "explained_variance")
    assert "not SAE seeds" in before.interval_over
    rows = [
        {"variant": v, "layer": 1, "seed": s, "metric": "explained_variance", "value": val}
        for v, vals in (("trained", (0.80, 0.82, 0.84)), ("rerandomized_incl_emb", (0.5, 0.6, 0.7)))
        for s, val in enumerate(vals)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "07_seed_replicates.csv", index=False)
    inp = Inputs(tmp_path, Options())
    assert inp.seed_var("trained", "explained_variance") == pytest.approx(0.0004)
    assert inp.seed_var("rerandomized_incl_emb", "explained_variance") == pytest.approx(0.01)
    assert inp.seed_var("step0", "explained_variance") == 0.0  # not replicated: nothing added
    after = sae_metric_similar(inp, "explained_variance")
    t = pd.read_csv(tmp_path / "fig2_sae_metrics.csv")
    r = t[t.variant.isin(["rerandomized_incl_emb", "rerandomized_excl_emb", "step0"])]
    n = len(r)
    added = sum((0.01 if v == "rerandomized_incl_emb" else 0.0) + 0.0004 for v in r.variant) / n**2
    z = R.z_value(0.95)
    sd_before = R.sd_from_ci(before.lo, before.hi)
    assert after.value == pytest.approx(before.value)
    assert (after.hi - after.lo) / (2 * z) == pytest.approx(math.sqrt(sd_before**2 + added), rel=1e-6)
    assert "SAE seeds (spread of 3 seeds measured at layer 1" in after.interval_over


def test_seed_spread_known_answer():
    from rsae_utils.studies.seeds.replicates import seed_spread

    t = pd.DataFrame(
        {"variant": ["a"] * 3 + ["b"], "layer": 9, "seed": [0, 1, 2, 0], "metric": "m", "value": [1.0, 2.0, 4.0, 5.0]}
    )
    s = seed_spread(t).set_index("variant")
    assert s.loc["a", "mean"] == pytest.approx(7 / 3) and s.loc["a", "sd"] == pytest.approx(math.sqrt(7 / 3))
    assert (s.loc["a", "lo"], s.loc["a", "hi"], s.loc["a", "n_seeds"]) == (1.0, 4.0, 3)
    assert math.isnan(s.loc["b", "sd"])
