"""The training gate: every claim that rests on SAEs says the budget its SAEs trained on and whether the study of
notebook 09 found its measure settled there; a claim whose trained-minus-random difference changes sign across the
study's budgets is *not decidable at this training budget* (qualifier "training budget"), with the trend.

Which study measure a claim rests on is stated once, in :data:`GATED`: ``("gap", measure)`` for a claim about a
difference between the trained model and its random variants (the sign rule applies), ``("level", measure)`` for
a claim about one variant's level (only "settled" is reported). Claims on measures the study does not take
(positional latents, LLM scorers) say so.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

import rsae_utils.names as N
from rsae_utils.claims.inputs import Inputs, MissingInput, Result
from rsae_utils.claims.rules import NOT_DECIDABLE, TRAINING_BUDGET, Verdict

GAP, LEVEL = "gap", "level"
GATED: dict[str, tuple[str, str]] = {
    "sae-explained-variance": (GAP, "explained_variance"),
    "sae-cosine": (GAP, "cos_sim"),
    "why-gap-closed": (GAP, "explained_variance"),
    "autointerp-detection": (GAP, "detection_auroc"),
    "autointerp-fuzzing": (GAP, "fuzzing_auroc"),
    "token-scorer-similar": (GAP, "detection_auroc"),
    "entropy-random-lower": (GAP, "token_entropy"),
    "entropy-trained-rises": (LEVEL, "token_entropy"),
    "entropy-random-flat": (LEVEL, "token_entropy"),
    "entropy-auroc-corr": (LEVEL, "token_entropy"),
    "single-token-majority": (LEVEL, "single_token_share"),
    "single-token-more": (GAP, "single_token_share"),
    "token-alone-above-chance": (LEVEL, "detection_auroc"),
    "single-token-explainer": (LEVEL, "detection_auroc"),
    "seed-shared": (LEVEL, "seed_shared"),
    "seed-relu-vs-topk": (LEVEL, "seed_shared"),
    "seed-wider": (LEVEL, "seed_shared"),
}
# Claims on SAEs whose measure the study does not take.
NOT_STUDIED = {
    "control-chance": "the study has no Control variant",
    "llm-beyond-tokens": "the study scores with the token baseline only",
    "positional-trained": "the study takes no positional measure",
    "positional-random": "the study takes no positional measure",
}


def _budget(inp: Inputs, notebook: str) -> float:
    """Training tokens of the SAEs a claim's notebook read: notebook 07's own, else notebook 03's."""
    own = N.table_spec(N.SEED_STABILITY).notebook
    name = N.SEED_STABILITY if notebook.split(" ")[0] == own else N.SAE_METRICS
    tokens = inp.params(name).get("train_tokens")
    return float(tokens) if tokens is not None else math.nan


def _settled(curves: pd.DataFrame, measure: str) -> str:
    rows = curves[curves["measure"] == measure]
    if rows.empty:
        return "not measured in the study"
    moving = rows[rows["settled"].astype(str) == "False"]
    top = int(rows["tokens_last"].max())
    if moving.empty:
        return f"settled by {top:,} tokens"
    # A run that stops short of the study's last budget (step-0's) names its own, so the head never claims a
    # budget the moving run did not reach.
    parts = [
        f"{r.variant} L{r.layer} {r.change_last_step:+.3g}"
        + ("" if int(r.tokens_last) == top else f" at {r.tokens_last:,}")
        for r in moving.itertuples()
    ]
    head = (
        f"not settled at {top:,} tokens"
        if (moving["tokens_last"] == top).any()
        else f"settled by {top:,} tokens; not settled in the runs that stop earlier"
    )
    return f"{head} (last 4x: {'; '.join(parts)})"


def _sign_changes(gaps: pd.DataFrame, measure: str) -> list[str]:
    """The study's (layer, variant) gaps of ``measure`` whose sign differs between its first and last budget, or
    that changed sign over the last step, each beyond the measure's tolerance (the table's ``tol``)."""
    rows = gaps[gaps["measure"] == measure]
    out = []
    for r in rows.itertuples():
        tol = float(getattr(r, "tol", 0.0))
        flipped = r.trend == "changes sign" or (
            r.gap_first * r.gap_last < 0 and min(abs(r.gap_first), abs(r.gap_last)) > tol
        )
        if flipped:
            out.append(
                f"{r.variant} L{r.layer}: {r.gap_first:+.3g} at {r.tokens_first:,} -> {r.gap_last:+.3g} at "
                f"{r.tokens_last:,} tokens"
            )
    return out


LONG = "long"  # the committed figures of the study's long profile, beside the default's (figures/long)
LONG_LABEL = "long study"


def _long_study(inp: Inputs) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(curves, gaps) of the ``long`` profile's study when its figures sit under ``<figures>/long``; the gate then
    reads both studies (the long one reaches 16x further), a flip in either makes a gap claim not decidable."""
    folder = inp.figures / LONG
    if not (folder / f"{N.BUDGET_CURVES}.csv").is_file():
        return None
    long = Inputs(folder, inp.opt)
    try:
        return long.table(N.BUDGET_CURVES), long.table(N.BUDGET_GAPS)
    except MissingInput:
        return None


def gate(claim_id: str, notebook: str, result: Result, inp: Inputs) -> tuple[Result, float, str]:
    """(the result, with the training-budget verdict where the sign rule applies; the SAEs' training tokens;
    the "settled" text) for one claim. Claims on no SAE get (result, NaN, "")."""
    if claim_id in NOT_STUDIED:
        return result, _budget(inp, notebook), NOT_STUDIED[claim_id]
    if claim_id not in GATED:
        return result, math.nan, ""
    kind, measure = GATED[claim_id]
    budget = _budget(inp, notebook)
    try:
        curves = inp.table(N.BUDGET_CURVES)
        gaps = inp.table(N.BUDGET_GAPS)
    except MissingInput as err:
        return result, budget, f"the training-budget study has not run ({err})"
    settled = _settled(curves, measure)
    flips = _sign_changes(gaps, measure) if kind == GAP else []
    long = _long_study(inp)
    if long is not None:
        settled += f"; {LONG_LABEL}: {_settled(long[0], measure)}"
        flips += [f"{LONG_LABEL}, {f}" for f in (_sign_changes(long[1], measure) if kind == GAP else [])]
    if not flips or result.verdict.verdict == NOT_DECIDABLE:
        return result, budget, settled
    v = result.verdict
    reason = (
        f"the trained-minus-random {measure} changes sign across the study's budgets ({'; '.join(flips)}); "
        f"at {budget:,.0f} tokens the number alone would give {v.label!r}: {v.reason}"
    )
    return replace(result, verdict=Verdict(NOT_DECIDABLE, reason, TRAINING_BUDGET)), budget, settled
