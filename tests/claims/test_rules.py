"""The verdict rules' effect sizes, reachability and built-in results (rsae_utils/claims/rules.py), and the claim
readers that use them: a test per rule and per outcome, on intervals and on small synthetic tables with known
answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from claims_helpers import LLM, RANDOM, write_latents, write_mmcs, write_scorers

from rsae_utils.claims import Options, build_claims, verdict_counts
from rsae_utils.claims import rules as R

OPT = Options(n_boot=200)
OUT = (R.NOT_DECIDABLE, R.OUT_OF_REACH)


def _vq(v: R.Verdict) -> tuple[str, str]:
    return v.verdict, v.qualifier


# ---------------------------------------------------------------------------------------------- reachability
# (rule, interval, bounds that rule out 'reproduced', bounds that rule out 'not reproduced', bounds that allow both)
CASES = {
    "similar": (lambda lo, hi, b: R.similar(lo, hi, 0.05, bounds=b), (-0.01, 0.01), (0.1, 1.0), (-0.04, 0.04)),
    "near": (lambda lo, hi, b: R.near(lo, hi, 0.5, 0.05, bounds=b), (0.49, 0.51), (0.0, 0.4), (0.46, 0.54)),
    "above": (lambda lo, hi, b: R.above(lo, hi, 0.05, bounds=b), (0.1, 0.2), (-1.0, 0.04), (0.06, 1.0)),
    "below": (lambda lo, hi, b: R.below(lo, hi, 0.05, bounds=b), (-0.2, -0.1), (-0.04, 1.0), (-1.0, -0.06)),
    "at_least": (lambda lo, hi, b: R.at_least(lo, hi, 0.5, bounds=b), (0.6, 0.7), (0.0, 0.45), (0.5, 1.0)),
    "at_most": (lambda lo, hi, b: R.at_most(lo, hi, 0.5, bounds=b), (0.1, 0.2), (0.55, 1.0), (0.0, 0.5)),
    "in_band": (lambda lo, hi, b: R.in_band(lo, hi, 0.2, 0.5, bounds=b), (0.3, 0.4), (0.0, 0.1), (0.25, 0.45)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_rule_says_not_decidable_when_an_outcome_is_out_of_reach(name):
    rule, (lo, hi), no_pass, no_fail = CASES[name]
    assert rule(lo, hi, None).verdict == R.REPRODUCED
    assert rule(lo, hi, R.Bounds(-10.0, 10.0)).verdict == R.REPRODUCED  # wide bounds change nothing
    for bounds, lost in ((no_pass, R.REPRODUCED), (no_fail, R.NOT_REPRODUCED)):
        v = rule(lo, hi, R.Bounds(*bounds, why="the measure is capped here"))
        assert _vq(v) == OUT, (bounds, v)
        assert f"{lost!r} is out of reach" in v.reason and "the measure is capped here" in v.reason
        assert "the number alone would give 'reproduced'" in v.reason
    assert rule(math.nan, 0.1, R.Bounds(*no_pass)).reason.startswith("no interval")  # no number: nothing to bound


def test_a_narrow_base_puts_a_decrease_of_the_margin_out_of_reach():
    """'Wider SAEs share fewer latents' with the narrow SAEs at 2.9%: the difference cannot fall below -0.029, so
    a decrease of 0.05 is impossible and 'not reproduced' would be guaranteed."""
    v = R.below(-0.003, 0.005, 0.05, what="wide minus narrow", bounds=R.Bounds(-0.029, 0.971, "narrow share 0.029"))
    assert _vq(v) == OUT and "'not reproduced (negligible)'" in v.reason
    assert _vq(R.below(-0.003, 0.005, 0.05)) == (R.NOT_REPRODUCED, R.NEGLIGIBLE)


def test_bounds_and_verdicts_refuse_bad_values():
    with pytest.raises(ValueError, match="floor"):
        R.Bounds(1.0, 0.0)
    with pytest.raises(ValueError, match="verdict must be one of"):
        R.Verdict("maybe", "x")
    with pytest.raises(ValueError, match="qualifier must be one of"):
        R.Verdict(R.NOT_REPRODUCED, "x", "small")
    for q in (R.BY_CONSTRUCTION, R.OUT_OF_REACH, R.NEGLIGIBLE, R.OPPOSITE):
        with pytest.raises(ValueError, match="goes with"):
            R.Verdict(R.REPRODUCED, "x", q)  # no qualified outcome can read "reproduced"


# ---------------------------------------------------------------------------------------- built-in results
def test_by_construction_is_not_decidable_and_keeps_what_the_number_says():
    v = R.by_construction("the scorer cannot beat chance on noise", R.near(0.499, 0.508, 0.5, 0.05))
    assert _vq(v) == (R.NOT_DECIDABLE, R.BY_CONSTRUCTION) and v.label == "not decidable at this scale (by construction)"
    assert v.reason.startswith("by construction: the scorer cannot") and "would give 'reproduced'" in v.reason


def test_verdict_counts_never_count_a_built_in_result_as_reproduced():
    t = pd.DataFrame(
        {
            "verdict": [R.REPRODUCED, R.NOT_DECIDABLE, R.NOT_REPRODUCED, R.NOT_REPRODUCED, R.NOT_DECIDABLE],
            "qualifier": ["", R.BY_CONSTRUCTION, R.NEGLIGIBLE, math.nan, R.OUT_OF_REACH],  # NaN: a CSV's empty cell
        }
    )
    assert verdict_counts(t) == {R.REPRODUCED: 1, R.NOT_REPRODUCED: 2, R.NOT_DECIDABLE: 2}
    assert verdict_counts(t, qualified=True) == {
        "reproduced": 1,
        "not reproduced": 1,
        "not reproduced (negligible)": 1,
        "not decidable at this scale (by construction)": 1,
        "not decidable at this scale (out of reach)": 1,
    }


# ------------------------------------------------------------------------------------------------- readers
def _one(figs, claim_id, opt=OPT):
    return build_claims(figs, opt).set_index("id").loc[claim_id]


def test_the_mmcs_dictionary_gate_lets_a_miss_through_when_more_latents_do_not_help(tmp_path):
    figs = tmp_path / "figures"
    # a band (ends lower) whose level is short of 0.9 and still rising with the dictionary: not decidable
    write_mmcs(figs, {"mlp": [0.4, 0.6, 0.8, 0.6, 0.2]}, dict_sizes=(128, 256))
    r = _one(figs, "mmcs-band-mlp")
    assert r.verdict == R.NOT_DECIDABLE and "rises with the dictionary" in r.reason and "a band" in r.reason
    # the smaller dictionary does better: more latents are not what is missing, so the miss is a verdict
    df = pd.read_csv(figs / "02_mmcs_goldilocks.csv")
    small, big = df.dict_size == 128, df.dict_size == 256
    df.loc[small, "mmcs"] = df.loc[big, "mmcs"].to_numpy() + 0.05
    df.to_csv(figs / "02_mmcs_goldilocks.csv", index=False)
    r = _one(figs, "mmcs-band-mlp")
    assert r.verdict == R.NOT_REPRODUCED and "more latents did not raise it" in r.reason


def _llm_latents(figs, trained_auroc: float) -> None:
    """Copy the fuzzing rows of ``write_latents`` as an LLM's: random variants keep their (entropy-falling) AUROC,
    the trained model's get ``trained_auroc`` (+- small noise)."""
    t = pd.read_csv(figs / "entropy_vs_auroc.csv")
    llm = t[t.scorer == "fuzzing"].copy()
    llm["backend"] = LLM
    tr = llm.variant == "trained"
    llm.loc[tr, "auroc"] = trained_auroc + np.random.default_rng(1).normal(0, 0.02, int(tr.sum()))
    pd.concat([t, llm]).to_csv(figs / "entropy_vs_auroc.csv", index=False)


def test_the_entropy_auroc_correlation_needs_a_scorer_that_could_fail(tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    write_latents(figs)
    r = _one(figs, "entropy-auroc-corr")
    assert (r.verdict, r.qualifier) == (R.NOT_DECIDABLE, R.BY_CONSTRUCTION) and "token-baseline" in r.measure
    assert r.value < -0.9  # the number is still shown
    _llm_latents(figs, 0.8)
    r = _one(figs, "entropy-auroc-corr")
    assert r.verdict == R.REPRODUCED and LLM in r.measure
    write_latents(figs)
    _llm_latents(figs, 0.5)  # an LLM at chance on the trained model
    r = _one(figs, "entropy-auroc-corr")
    assert r.verdict == R.NOT_DECIDABLE and "does not beat chance" in r.reason


def test_the_single_token_explainer_is_judged_where_the_profile_beats_chance(tmp_path):
    figs = tmp_path / "figures"
    write_scorers(figs, token=(0.7, 0.65, 0.75), single_gap=(-0.01, -0.03, 0.01))
    df = pd.read_csv(figs / "08_scorers.csv")
    # layer 1: the profile at chance and a large gap; only layer 0's cells have signal
    at1 = df.layer == 1
    df.loc[at1 & (df.scorer == "token-baseline detection"), ["auroc", "auroc_lo", "auroc_hi"]] = (0.5, 0.45, 0.55)
    df.loc[at1 & (df.scorer == "single-token detection"), ["gap", "gap_lo", "gap_hi"]] = (-0.2, -0.25, -0.15)
    df.to_csv(figs / "08_scorers.csv", index=False)
    r = _one(figs, "single-token-explainer")
    assert r.value == pytest.approx(-0.01) and r.verdict == R.REPRODUCED
    assert f"{len(RANDOM)} of {2 * len(RANDOM)} variant x layer cells" in r.interval_over
    # no cell with signal: both scorers near chance, so "as well" is built in and nothing is decided
    write_scorers(figs, token=(0.52, 0.49, 0.55), single_gap=(-0.01, -0.03, 0.01))
    r = _one(figs, "single-token-explainer")
    assert r.verdict == R.NOT_DECIDABLE and "beats chance by more than 0.05" in r.reason
    assert "would give 'reproduced'" in r.reason and "4 of 4" in r.interval_over


def test_a_tiny_directional_effect_is_negligible_not_reproduced(tmp_path):
    """The default run's embedding-row frontier: a gap of 0.015-0.028 in explained variance with margin 0.05."""
    from claims_helpers import write_frontier

    figs = tmp_path / "figures"
    write_frontier(figs, gaps=((0.6, 0.7, 0.55, 0.65), (0.015, 0.02, 0.028, 0.021)))
    got = build_claims(figs, OPT).set_index("id")
    assert (got.loc["frontier-embedding", "verdict"], got.loc["frontier-embedding", "qualifier"]) == (
        R.NOT_REPRODUCED,
        R.NEGLIGIBLE,
    )
    assert got.loc["frontier-toy", "verdict"] == R.REPRODUCED
