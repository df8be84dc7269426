"""The training gate of the claims table: the SAEs' budget and the study's "settled" on every claim that rests on
SAEs; a difference whose sign flips across the study's budgets makes the claim not decidable (training budget)."""

from __future__ import annotations

import math

from claims_helpers import write_all, write_budget

from rsae_utils.claims import Options, build_claims
from rsae_utils.claims import rules as R
from rsae_utils.claims.training import GATED, NOT_STUDIED

OPT = Options()


def _row(tmp_path, claim_id):
    return build_claims(tmp_path / "figures", OPT).set_index("id").loc[claim_id]


def test_every_gated_claim_exists():
    from rsae_utils.claims import CLAIMS

    ids = {c.id for c in CLAIMS}
    assert set(GATED) <= ids and set(NOT_STUDIED) <= ids and not set(GATED) & set(NOT_STUDIED)


def test_a_steady_gap_keeps_the_verdict_and_reports_budget_and_settled(tmp_path):
    write_all(tmp_path / "figures")
    before = _row(tmp_path, "sae-explained-variance")
    write_budget(tmp_path / "figures", ev_gaps=(0.3, 0.4), settled=True)
    row = _row(tmp_path, "sae-explained-variance")
    assert row.verdict == before.verdict and row.qualifier == before.qualifier
    assert row.sae_tokens == 61_440 and row.settled.startswith("settled by 1,048,576")


def test_a_run_that_stops_earlier_names_its_own_budget(tmp_path):
    """Step-0 stops at 65,536 tokens while the trained model reaches 1,048,576: "settled" must not say the moving
    run was measured at the study's last budget."""
    write_all(tmp_path / "figures")
    write_budget(tmp_path / "figures", settled=True, step0_stop=65_536)
    settled = _row(tmp_path, "sae-explained-variance").settled
    assert settled.startswith("settled by 1,048,576 tokens; not settled in the runs that stop earlier")
    assert "step0 L4 +0.05 at 65,536" in settled and "trained" not in settled.split("last 4x")[1]
    # a moving run at the last budget keeps the plain head, and the short one still names its budget
    write_budget(tmp_path / "figures", settled=False, step0_stop=65_536)
    settled = _row(tmp_path, "sae-explained-variance").settled
    assert settled.startswith("not settled at 1,048,576 tokens") and "trained L4 +0.05;" in settled
    assert "step0 L4 +0.05 at 65,536" in settled


def test_a_gap_that_flips_sign_is_not_decidable_at_this_budget(tmp_path):
    write_all(tmp_path / "figures")
    write_budget(tmp_path / "figures", ev_gaps=(-0.2, 0.3), settled=False)
    row = _row(tmp_path, "sae-explained-variance")
    assert row.verdict == R.NOT_DECIDABLE and row.qualifier == R.TRAINING_BUDGET
    assert "changes sign" in row.reason and "-0.2 at 4,096" in row.reason and "+0.3 at 1,048,576" in row.reason
    assert row.settled.startswith("not settled") and "+0.05" in row.settled
    # a gap within the measure's tolerance of 0 at one end is no flip
    write_budget(tmp_path / "figures", ev_gaps=(-0.005, 0.3))
    assert _row(tmp_path, "sae-explained-variance").qualifier != R.TRAINING_BUDGET


def test_without_the_study_the_claims_say_so(tmp_path):
    write_all(tmp_path / "figures")
    row = _row(tmp_path, "sae-cosine")
    assert "has not run" in row.settled
    toy = _row(tmp_path, "mmcs-band-raw")  # not on SAEs of a transformer: no budget, no settled
    assert math.isnan(toy.sae_tokens) and toy.settled in ("", None) or isinstance(toy.settled, float)
    assert _row(tmp_path, "positional-trained").settled == NOT_STUDIED["positional-trained"]


def test_explained_variance_claim_reports_ev_without_the_top_directions(tmp_path):
    import pandas as pd

    figs = tmp_path / "figures"
    write_all(figs)
    plain = _row(tmp_path, "sae-explained-variance")
    assert "principal directions" not in plain.measure
    t = pd.read_csv(figs / "fig2_sae_metrics.csv")
    # trained keeps 0.5 without its top directions, every random variant 0.2: the difference beside is -0.3
    t["ev_top_pcs_out"] = [0.5 if v == "trained" else 0.2 for v in t.variant]
    t.to_csv(figs / "fig2_sae_metrics.csv", index=False)
    row = _row(tmp_path, "sae-explained-variance")
    assert "with the top 3 principal directions projected out: -0.300" in row.measure
    assert row.value == plain.value and row.verdict == plain.verdict  # the verdict still reads the EV


def test_the_long_study_extends_the_gate(tmp_path):
    """With the long profile's study under figures/long, "settled" quotes both studies, and a gap that flips sign
    only further up the curve makes the claim not decidable, the reason naming the long study."""
    figs = tmp_path / "figures"
    write_all(figs)
    write_budget(figs, ev_gaps=(0.3, 0.4), settled=True)
    write_budget(figs / "long", ev_gaps=(0.3, -0.2), settled=False)
    row = _row(tmp_path, "sae-explained-variance")
    assert row.verdict == R.NOT_DECIDABLE and row.qualifier == R.TRAINING_BUDGET
    assert "long study, step0 L4: +0.3 at 4,096 -> -0.2" in row.reason
    assert row.settled.startswith("settled by 1,048,576") and "; long study: not settled" in row.settled
    # a long study that agrees keeps the verdict
    write_budget(figs / "long", ev_gaps=(0.3, 0.5), settled=True)
    row = _row(tmp_path, "sae-explained-variance")
    assert row.qualifier != R.TRAINING_BUDGET and "; long study: settled by" in row.settled
