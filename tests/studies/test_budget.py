"""The training-budget study's pieces with known answers: curve rules on synthetic curves, the measures on
constructed SAEs, and the machinery on notebook 02's synthetic data (MMCS rises with budget and settles)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import resolve
from rsae_utils.sae.metrics import top_directions
from rsae_utils.sae.topk import TopKTrainer, to_sae_lens
from rsae_utils.studies.budget.curves import (
    curve_summary,
    gap_summary,
    gap_trend,
    geometric_limit,
    is_settled,
    last_change,
)
from rsae_utils.studies.budget.measures import reconstruction_measures, seed_shared
from rsae_utils.studies.budget.run import REPEAT, BudgetStudy
from rsae_utils.toys.mmcs import mmcs
from rsae_utils.toys.synthetic import SparseFeatureWorld, seeded_generator

BUDGETS = [4096 * 4**i for i in range(5)]


def power_curve(a: float, b: float, c: float) -> list[float]:
    return [a - b * t**-c for t in BUDGETS]


# --- curves ------------------------------------------------------------------------------------------------------
def test_geometric_limit_recovers_a_power_law_limit():
    # a - b t^-c: per-4x changes shrink by 4^-c, so the geometric series ends exactly at a
    v = power_curve(0.9, 5.0, 0.5)
    assert geometric_limit(BUDGETS, v) == pytest.approx(0.9, abs=1e-9)
    assert geometric_limit(BUDGETS, power_curve(0.4, -2.0, 0.3)) == pytest.approx(0.4, abs=1e-9)


def test_no_limit_without_a_clear_trend():
    assert geometric_limit(BUDGETS, [0.5, 0.6, 0.55, 0.62, 0.58]) is None  # alternating
    assert geometric_limit(BUDGETS, [0.1, 0.2, 0.3, 0.4, 0.5]) is None  # not slowing (ratio 1)
    assert geometric_limit(BUDGETS[:2], [0.1, 0.2]) is None


def test_settled_against_not_settled():
    fast = power_curve(0.9, 50.0, 1.0)  # changes shrink 4x per step: last change tiny
    slow = [0.5 + 0.05 * i for i in range(5)]  # +0.05 per 4x: not settled at tol 0.01
    assert is_settled(BUDGETS, fast, 0.01) is True
    assert is_settled(BUDGETS, slow, 0.01) is False
    assert last_change(BUDGETS, slow) == pytest.approx(0.05)
    assert is_settled(BUDGETS[:1], slow[:1], 0.01) is None
    # NaNs (a budget the measure lacks) are skipped, order does not matter
    assert last_change([4, 1, 16], [0.2, 0.1, float("nan")]) == pytest.approx(0.1)


def test_gap_trend():
    assert gap_trend([1, 4], [0.10, 0.20], 0.02) == "grows"
    assert gap_trend([1, 4], [0.20, 0.10], 0.02) == "shrinks"
    assert gap_trend([1, 4], [0.20, 0.21], 0.02) == "holds"
    assert gap_trend([1, 4], [0.20, -0.20], 0.02) == "changes sign"
    assert gap_trend([1, 4], [0.001, -0.001], 0.02) == "holds"  # noise around 0 is no sign change


def test_summaries_on_a_synthetic_table():
    rows = []
    for v, a in (("trained", 0.9), ("step0", 0.4)):
        for t, ev in zip(BUDGETS, power_curve(a, 2.0, 0.5), strict=True):
            rows.append({"variant": v, "layer": 4, "tokens": t, "explained_variance": ev})
    table = pd.DataFrame(rows)
    cur = curve_summary(table, ["explained_variance"])
    assert set(cur.variant) == {"trained", "step0"} and (cur.tokens_last == BUDGETS[-1]).all()
    assert cur.limit.to_numpy() == pytest.approx([0.4, 0.9])  # sorted by variant: step0, trained
    gaps = gap_summary(table, ["explained_variance"])
    assert len(gaps) == 1 and gaps.variant.iloc[0] == "step0"
    assert gaps.gap_last.iloc[0] == pytest.approx(0.5) and gaps.trend.iloc[0] == "holds"


def test_bad_curve_is_refused():
    with pytest.raises(ParameterError, match="'budgets' and 'values'"):
        last_change([1, 2], [1.0])


# --- measures ----------------------------------------------------------------------------------------------------
def _identity_topk(d: int, k: int):
    """A TopK SAE whose latents are +-e_i: with k = d it reconstructs every input exactly."""
    from rsae_utils.sae.topk import TopKResult

    eye = torch.eye(d)
    W = torch.cat([eye, -eye])
    return to_sae_lens(TopKResult(W_enc=W, b_enc=torch.zeros(2 * d), W_dec=W.clone(), b_dec=torch.zeros(d), k=k))


def test_reconstruction_measures_are_notebook_03s():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    m = reconstruction_measures(_identity_topk(8, 8), x, top_directions(x, 2))
    assert m["explained_variance"] == pytest.approx(1.0, abs=1e-6) and m["ev_top_pcs_out"] == pytest.approx(1.0)
    assert set(m) == {"explained_variance", "ev_top_pcs_out", "median_token_fvu", "cos_sim", "dead_fraction"}


def test_seed_shared_of_itself_and_of_a_stranger():
    a = _identity_topk(8, 2)
    assert seed_shared(a, a) == 1.0
    from rsae_utils.sae.topk import TopKResult

    gen = torch.Generator().manual_seed(3)
    W = torch.nn.functional.normalize(torch.randn(512, 64, generator=gen), dim=1)
    V = torch.nn.functional.normalize(torch.randn(512, 64, generator=gen), dim=1)
    mk = lambda M: to_sae_lens(TopKResult(W_enc=M, b_enc=torch.zeros(512), W_dec=M.clone(), b_dec=torch.zeros(64), k=4))  # noqa: E731
    assert seed_shared(mk(W), mk(V)) == 0.0  # random directions in 64 dims never reach cosine 0.7


# --- the machinery on data with known features -------------------------------------------------------------------
def test_mmcs_rises_with_budget_and_settles_on_known_features():
    """Notebook 02's synthetic world (true features known): one fast-trainer run with snapshots every 4x, as the
    study trains; MMCS with the true features rises with the budget and its last 4x change is within tolerance."""
    world = SparseFeatureWorld(n_features=64, d_model=32, world_seed=0, n_calib=2048, correlated=False)
    gen = seeded_generator(0, 5)
    batch = 256
    trainer = TopKTrainer(32, 128, 4, lr=4e-3, seed=0)
    budgets = [batch * 4**i for i in range(7)]  # 256 .. 1M tokens
    scores = []
    while trainer.tokens < budgets[-1]:
        _, xs = world.sample_raw(64 * batch, gen)
        for x in xs.split(batch):
            trainer.step(x)
            if trainer.tokens in budgets:
                scores.append(mmcs(trainer.p["W_dec"].clone(), world.directions))
    assert len(scores) == len(budgets)
    assert scores[-1] > scores[0] + 0.2, scores  # training finds the features
    assert all(b >= a - 0.01 for a, b in zip(scores, scores[1:], strict=False)), scores  # never clearly worse
    assert is_settled(budgets, scores, 0.02) is True, scores
    assert not math.isnan(scores[-1]) and scores[-1] > 0.8


def test_short_variants_stop_short_by_budgets_early_and_seed_variants_get_the_seeds():
    cfg = resolve("09_training_budget", "smoke", {"short_variants": ["step0"], "budget_stop": 16_384})
    study = BudgetStudy(cfg)
    main = {(r.variant, r.layer): r.budgets for r in study.runs() if r.seed == 0 and r.run != REPEAT}
    assert main[("trained", cfg.layers[0])] == tuple(study.budgets)
    assert main[("step0", cfg.layers[0])] == tuple(study.budgets[:-1])
    over = {"short_variants": ["step0"], "budget_stop": 16_384, "short_by": 2, "seed_variants": ["trained"]}
    study = BudgetStudy(resolve("09_training_budget", "smoke", over))
    runs = study.runs()
    main = {(r.variant, r.layer): r.budgets for r in runs if r.seed == 0 and r.run != REPEAT}
    assert main[("step0", cfg.layers[0])] == tuple(study.budgets[:-2])
    assert {r.variant for r in runs if r.seed != 0} == {"trained"}
    study = BudgetStudy(resolve("09_training_budget", "smoke", {"short_variants": ["step0"], "short_by": 99}))
    assert {r.budgets for r in study.runs() if r.variant == "step0" and r.seed == 0} == {tuple(study.budgets[:1])}
    with pytest.raises(ParameterError, match="short_variants"):
        resolve("09_training_budget", "smoke", {"short_variants": ["trained"]})
    with pytest.raises(ParameterError, match="seed_variants"):
        resolve("09_training_budget", "smoke", {"variants": ["trained", "step0"], "seed_variants": ["control"]})
