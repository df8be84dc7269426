"""Claim readers for auto-interpretability and token entropy (notebooks 04/05) and the critique (08).

AUROC intervals come from the tables: notebook 05's pooled example-level bootstrap (``auroc_sd``) and notebook 08's
two-stage bootstrap over latents then examples (``auroc_lo``/``auroc_hi``, ``gap_lo``/``gap_hi``), combined over
cells as independent normal estimates. Per-latent quantities (token entropy, single-token flags, the
entropy-AUROC correlation, positional counts) get a bootstrap over latents, stratified by (variant, layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import rsae_utils.claims.rules as R
from rsae_utils.claims.inputs import (
    TOKEN_BASELINE,
    Inputs,
    Result,
    SeedVar,
    mean_auroc,
    paired_auroc_gap,
    random_variants,
    require,
)
from rsae_utils.claims.rules import mean_of_independent, sd_from_ci
from rsae_utils.names import AUROC_VS_LAYER, ENTROPY_VS_AUROC, LLM_MINUS_TOKEN_BASELINE, POSITIONAL, SCORERS


# ------------------------------------------------------------------------------------------------------ 04 / 05
def _seeds(inp: Inputs, backend: str, layers: Sequence[int]) -> tuple[SeedVar | None, str]:
    """(between-seed variance per (variant, scorer), what the interval covers): measured by notebook 07 for the
    token baseline only, at one layer (borrowed for the others); an LLM's cells keep their example-level
    intervals."""
    if backend != TOKEN_BASELINE:
        return None, "(SAE seeds: spread measured for the token baseline only)"
    sv = lambda variant, scorer: inp.seed_var(variant, f"{TOKEN_BASELINE} {scorer}")  # noqa: E731
    return sv, inp.seed_note(layers)


def llm_backend(t: pd.DataFrame) -> str:
    """The LLM backend of the table: an endpoint's before the offline one; ``MissingInput`` when there is none."""
    llms = sorted(b for b in set(t.backend) if b != TOKEN_BASELINE)
    require(len(llms) > 0, "notebook 04 scored no latents with an LLM (only the token baseline)")
    return sorted(llms, key=lambda b: b.startswith("local:"))[0]


def _informative(inp: Inputs, rows: pd.DataFrame, what: str) -> tuple[bool, str]:
    """The scorer must beat chance on the trained model (mean AUROC's interval above 0.5 + chance_margin) for a
    "scores about as well" claim to be about explanations rather than noise."""
    t = rows[rows.variant == "trained"]
    if t.empty:
        return False, f"{what} scored no trained-model latents"
    est, lo, hi = mean_auroc(t, inp.opt.ci_level)
    ok = lo > 0.5 + inp.opt.chance_margin
    return ok, (
        f"{what} does not beat chance on the trained model (AUROC {est:.3g} [{lo:.3g}, {hi:.3g}], needs "
        f"> {0.5 + inp.opt.chance_margin:g}): its scores say nothing about explanations"
    )


def auroc_similar(inp: Inputs, backend: str | None, scorers: Sequence[str]) -> Result:
    """Random minus trained AUROC within +-auroc_margin (``backend`` None: the LLM one)."""
    t = inp.table(AUROC_VS_LAYER)
    b = backend or llm_backend(t)
    rows = t[(t.backend == b) & t.scorer.isin(scorers)]
    sv, seeds = _seeds(inp, b, rows.layer.unique())
    est, lo, hi, n = paired_auroc_gap(rows, inp.opt.ci_level, sv)
    ok, why = _informative(inp, rows, b)
    v = R.scale_gate(ok, why, R.similar(lo, hi, inp.opt.auroc_margin, what="AUROC difference"))
    return Result(
        est,
        lo,
        hi,
        f"examples (pooled bootstrap per cell; {n} layer x scorer cells) {seeds}",
        v,
        f"{b}, {' + '.join(scorers)}: random variants minus trained AUROC",
    )


# Results built into a scorer (rules.by_construction): said in the verdict, never counted as reproduced.
CONTROL_BUILT_IN = (
    "the Control's embeddings are fresh noise on every forward, so no token predicts its latents and a "
    "token-identity scorer cannot beat chance on it"
)
ENTROPY_BUILT_IN = (
    "the token-identity baseline predicts a latent from its top tokens, so it must score latents whose activations "
    "sit on few tokens (low entropy) higher: a negative correlation is built into the scorer"
)


def control_chance(inp: Inputs) -> Result:
    """The Control's AUROC within 0.5 +- chance_margin, with a scorer that could fail: an LLM that beats chance on
    the trained model. The token baseline cannot fail on the Control (``CONTROL_BUILT_IN``)."""
    t = inp.table(AUROC_VS_LAYER)
    ctl = t[t.variant == "control"]
    require(len(ctl) > 0, "notebook 04 scored no Control latents")
    llm = [b for b in set(ctl.backend) if b != TOKEN_BASELINE]
    b = llm_backend(ctl) if llm else TOKEN_BASELINE
    rows = ctl[ctl.backend == b]
    sv, seeds = _seeds(inp, b, rows.layer.unique())
    est, lo, hi = mean_auroc(rows, inp.opt.ci_level, seed_var=sv)
    v = R.near(lo, hi, 0.5, inp.opt.chance_margin, what="Control AUROC")
    if b == TOKEN_BASELINE:
        v = R.by_construction(CONTROL_BUILT_IN, v)
    else:
        v = R.scale_gate(*_informative(inp, t[t.backend == b], b), v)
    return Result(
        est,
        lo,
        hi,
        f"examples (pooled bootstrap per cell; {len(rows)} layer x scorer cells) {seeds}",
        v,
        f"{b}{' (no LLM scored the Control)' if b == TOKEN_BASELINE else ''}: Control AUROC, mean over "
        f"layers and scorers",
    )


# Per-latent statistics whose windows notebook 04 resampled: (the column of how they move, the second stage).
WITHIN = {"entropy_nats": ("entropy_window_sd", "sd"), "single_token": ("single_token_window_p", "share")}
WINDOWS = "latents, then each latent's explainer windows (two-stage bootstrap)"


def _latents(inp: Inputs) -> pd.DataFrame:
    t = inp.table(ENTROPY_VS_AUROC, [c for c, _ in WITHIN.values()])
    return t.drop_duplicates(["variant", "layer", "latent"])


def _by_cell(d: pd.DataFrame, col: str) -> dict[tuple[str, int], np.ndarray]:
    """Per (variant, layer): rows (value, how it moves over resampled windows) of ``col``'s latents."""
    spread = WITHIN[col][0]
    return {(v, int(L)): g[[col, spread]].to_numpy(float) for (v, L), g in d.groupby(["variant", "layer"], sort=True)}


def _vs_trained(inp: Inputs, col: str, other: Sequence[str], offset: int) -> tuple[float, float, float, int]:
    """Mean over (variant in ``other``, layer) of that cell's mean ``col`` minus the trained model's at the layer;
    bootstrap over latents within every cell, then over each latent's windows."""
    cells = _by_cell(_latents(inp), col)
    pairs = [(c, ("trained", c[1])) for c in cells if c[0] in other and ("trained", c[1]) in cells]
    require(len(pairs) > 0, f"{ENTROPY_VS_AUROC}.csv has no layer with the trained model and the compared variants")
    keys = list(dict.fromkeys(k for p in pairs for k in p))
    idx = [(keys.index(a), keys.index(b)) for a, b in pairs]
    est, lo, hi = inp.boot_within(
        [cells[k] for k in keys], WITHIN[col][1], lambda g: np.mean([g[a].mean() - g[b].mean() for a, b in idx]), offset
    )
    return est, lo, hi, len(pairs)


def entropy_random_lower(inp: Inputs) -> Result:
    d = _latents(inp)
    est, lo, hi, n = _vs_trained(inp, "entropy_nats", random_variants(d.variant), 1)
    v = R.below(lo, hi, inp.opt.entropy_margin, what="entropy difference (nats)")
    return Result(
        est,
        lo,
        hi,
        f"{WINDOWS}, stratified over {n} variant x layer cells",
        v,
        "token entropy, random variants minus trained, mean over variants and layers (nats)",
    )


def entropy_control_higher(inp: Inputs) -> Result:
    est, lo, hi, n = _vs_trained(inp, "entropy_nats", ["control"], 2)
    v = R.above(lo, hi, inp.opt.entropy_margin, what="entropy difference (nats)")
    return Result(
        est,
        lo,
        hi,
        f"{WINDOWS}, stratified over {n} layers",
        v,
        "token entropy, Control minus trained, mean over layers (nats)",
    )


def _depth_change(inp: Inputs, variants: Sequence[str], offset: int) -> tuple[float, float, float, list[int]]:
    cells = _by_cell(_latents(inp), "entropy_nats")
    layers = sorted({L for v, L in cells if v in variants})
    require(len(layers) >= 2, f"{ENTROPY_VS_AUROC}.csv has fewer than two layers")
    first, deep = layers[0], layers[-1]
    vs = [v for v in variants if (v, first) in cells and (v, deep) in cells]
    require(len(vs) > 0, "no variant has latents at the first and the deepest layer")
    groups = [cells[(v, L)] for v in vs for L in (first, deep)]
    est, lo, hi = inp.boot_within(
        groups, "sd", lambda g: np.mean([g[2 * i + 1].mean() - g[2 * i].mean() for i in range(len(vs))]), offset
    )
    return est, lo, hi, [first, deep]


def entropy_trained_rises(inp: Inputs) -> Result:
    est, lo, hi, (a, b) = _depth_change(inp, ["trained"], 3)
    v = R.above(lo, hi, inp.opt.entropy_margin, what=f"entropy change, layer {a} to {b}")
    return Result(
        est, lo, hi, f"{WINDOWS}, two layers", v, f"trained model: token entropy at layer {b} minus layer {a}"
    )


def entropy_random_flat(inp: Inputs) -> Result:
    d = _latents(inp)
    est, lo, hi, (a, b) = _depth_change(inp, random_variants(d.variant), 4)
    v = R.similar(lo, hi, inp.opt.entropy_margin, what=f"entropy change, layer {a} to {b}")
    return Result(
        est,
        lo,
        hi,
        f"{WINDOWS}, two layers per variant",
        v,
        f"random variants: token entropy at layer {b} minus layer {a}, mean over variants",
    )


def _beats_chance_per_latent(inp: Inputs, t: pd.DataFrame, backend: str) -> tuple[bool, str]:
    """:func:`_informative` on per-latent rows: the backend's mean fuzzing AUROC on the trained model's latents
    (bootstrap over latents) above 0.5 + chance_margin."""
    x = t[(t.variant == "trained") & (t.backend == backend) & (t.scorer == "fuzzing")].auroc.dropna()
    need = 0.5 + inp.opt.chance_margin
    if len(x) < 3:
        return False, f"{backend} scored fewer than 3 trained-model latents: whether it beats chance is unknown"
    est, lo, hi = inp.boot([x.to_numpy(float)], lambda g: g[0].mean(), 10)
    return lo > need, (
        f"{backend} does not beat chance on the trained model (fuzzing AUROC {est:.3g} [{lo:.3g}, {hi:.3g}] over "
        f"{len(x)} latents, needs > {need:g}): its scores say nothing about explanations"
    )


def entropy_auroc_corr(inp: Inputs) -> Result:
    """Spearman(token entropy, fuzzing AUROC) over random-variant latents, below -corr_margin. Only an LLM's scores
    can test it (gated on the LLM beating chance); the token baseline's are negative by construction."""
    t = inp.table(ENTROPY_VS_AUROC)
    rand = t[t.variant.isin(random_variants(t.variant)) & (t.scorer == "fuzzing")].dropna(subset=["auroc"])
    llm = rand[rand.backend != TOKEN_BASELINE]
    d = llm if len(llm) >= inp.opt.min_corr_latents else rand[rand.backend == TOKEN_BASELINE]
    require(len(d) >= 3, f"{ENTROPY_VS_AUROC}.csv has fewer than 3 scored random-variant latents")
    xy = d[["entropy_nats", "auroc"]].to_numpy(float)
    est, lo, hi = inp.boot([xy], lambda g: spearmanr(g[0][:, 0], g[0][:, 1]).statistic, 5)
    v = R.below(lo, hi, inp.opt.corr_margin, what="Spearman correlation", bounds=R.Bounds(-1.0, 1.0, "a correlation"))
    b = d.backend.iloc[0]
    v = (
        R.by_construction(ENTROPY_BUILT_IN, v)
        if b == TOKEN_BASELINE
        else R.scale_gate(*_beats_chance_per_latent(inp, t, b), v)
    )
    return Result(
        est,
        lo,
        hi,
        f"latents ({len(d)})",
        v,
        f"Spearman(token entropy, fuzzing AUROC), random variants, {b}"
        + (f" (the LLM scored < {inp.opt.min_corr_latents} random latents)" if b == TOKEN_BASELINE else ""),
    )


def single_token_majority(inp: Inputs) -> Result:
    d = _latents(inp)
    cells = _by_cell(d[d.variant.isin(random_variants(d.variant))], "single_token")
    require(len(cells) > 0, f"{ENTROPY_VS_AUROC}.csv has no random-variant latents")
    est, lo, hi = inp.boot_within(list(cells.values()), "share", lambda g: np.concatenate(g).mean(), 6)
    v = R.at_least(lo, hi, inp.opt.majority, what="single-token share")
    return Result(
        est,
        lo,
        hi,
        f"{WINDOWS}, {sum(map(len, cells.values()))} latents",
        v,
        "share of scored random-variant latents with >= 90% of their top activation mass on one token",
    )


def single_token_more(inp: Inputs) -> Result:
    d = _latents(inp)
    est, lo, hi, n = _vs_trained(inp, "single_token", random_variants(d.variant), 7)
    v = R.above(lo, hi, inp.opt.share_margin, what="single-token share difference")
    return Result(
        est,
        lo,
        hi,
        f"{WINDOWS}, stratified over {n} variant x layer cells",
        v,
        "single-token share, random variants minus trained, mean over variants and layers",
    )


# ----------------------------------------------------------------------------------------------------------- 08
def _positional(inp: Inputs) -> pd.DataFrame:
    t = inp.table(POSITIONAL, ["excess_window_sd"])
    view = "exclude" if (t.boundary == "exclude").any() else t.boundary.iloc[0]
    return t[t.boundary == view]


def _window_var(rows: pd.DataFrame) -> float:
    """Variance of the pooled share beyond the control that the contexts read add (notebook 08's random halves):
    sum over cells of (cell's share of the judged latents)^2 x its sd^2; a cell without halves adds nothing."""
    w = rows.n_judged.to_numpy(float) / rows.n_judged.sum()
    return float(np.nansum((w * rows.excess_window_sd.to_numpy(float)) ** 2))


def _widen(inp: Inputs, est: float, lo: float, hi: float, var: float) -> tuple[float, float, float]:
    """The interval [lo, hi] with ``var`` added to its normal variance."""
    if not var > 0:
        return est, lo, hi
    sd = math.sqrt(R.sd_from_ci(lo, hi, inp.opt.ci_level) ** 2 + var)
    return R.normal_ci(est, sd, inp.opt.ci_level)


POSITIONAL_OVER = "latents ({n} judged) + contexts (notebook 08's random halves of the held-out contexts)"


def _flags(rows: pd.DataFrame, col: str) -> list[np.ndarray]:
    """One 0/1 array per (variant, layer): ``col`` ones among ``n_judged`` latents (a latent-level bootstrap)."""
    return [
        np.r_[np.ones(int(r[col])), np.zeros(int(r.n_judged) - int(r[col]))]
        for _, r in rows.iterrows()
        if r.n_judged > 0
    ]


def _positional_excess(inp: Inputs, variants: Sequence[str], offset: int) -> tuple[float, float, float, int]:
    """Share of judged latents the binned firing-rate test calls positional minus the share on position-shuffled
    activations (the test's false-positive rate with its effect floor), pooled over the variants' layers; bootstrap
    over latents."""
    t = _positional(inp)
    rows = t[t.variant.isin(variants)]
    require(len(rows) > 0 and rows.n_judged.sum() > 0, f"{POSITIONAL}.csv has no judged latents of these variants")
    obs, ctl = _flags(rows, "n_positional"), _flags(rows, "n_positional_control")
    k = len(obs)
    est, lo, hi = inp.boot(obs + ctl, lambda g: np.concatenate(g[:k]).mean() - np.concatenate(g[k:]).mean(), offset)
    est, lo, hi = _widen(inp, est, lo, hi, _window_var(rows[rows.n_judged > 0]))
    return est, lo, hi, int(rows.n_judged.sum())


def positional_trained(inp: Inputs) -> Result:
    est, lo, hi, n = _positional_excess(inp, ["trained"], 8)
    v = R.above(lo, hi, inp.opt.share_margin, what="positional share beyond the shuffled control")
    return Result(
        est,
        lo,
        hi,
        POSITIONAL_OVER.format(n=n),
        v,
        "trained model: positional share (binned firing-rate test) minus the shuffled-position control's, pooled over "
        "layers",
    )


def positional_random(inp: Inputs) -> Result:
    """Random variants have *fewer* positional latents than the trained model (beyond each one's shuffled control):
    the critique's contrast, not the random share alone, which is small for both at this scale."""
    t = _positional(inp)
    groups = []
    for variants in (random_variants(t.variant), ["trained"]):
        rows = t[t.variant.isin(variants)]
        require(len(rows) > 0 and rows.n_judged.sum() > 0, f"{POSITIONAL}.csv has no judged latents of these variants")
        groups.append((_flags(rows, "n_positional"), _flags(rows, "n_positional_control")))
    sizes = [len(g) for pair in groups for g in pair]
    edges = np.cumsum([0, *sizes])

    def excess_gap(g: Sequence[np.ndarray]) -> float:
        pooled = [np.concatenate(g[a:b]).mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]
        return (pooled[0] - pooled[1]) - (pooled[2] - pooled[3])

    flat = [x for pair in groups for g in pair for x in g]
    est, lo, hi = inp.boot(flat, excess_gap, 9)
    judged = t[t.n_judged > 0]
    var = sum(_window_var(judged[judged.variant.isin(v)]) for v in (random_variants(t.variant), ["trained"]))
    est, lo, hi = _widen(inp, est, lo, hi, var)
    # The random variants' share cannot fall below 0: their excess over the trained model's is at least minus
    # (the trained excess + the random control share), so a decrease of the margin may be out of reach.
    (r_obs, r_ctl), (t_obs, t_ctl) = ([np.concatenate(g).mean() for g in pair] for pair in groups)
    floor = -(t_obs - t_ctl) - r_ctl
    bounds = R.Bounds(
        floor,
        floor + 1.0,
        f"the trained model's positional share beyond its control is {t_obs - t_ctl:.3g} (random control "
        f"{r_ctl:.3g}): the random variants cannot have more than {-floor:.3g} fewer",
    )
    v = R.below(
        lo, hi, inp.opt.share_margin, what="random minus trained positional share beyond the control", bounds=bounds
    )
    n = int(t[t.variant.isin([*random_variants(t.variant), "trained"])].n_judged.sum())
    return Result(
        est,
        lo,
        hi,
        POSITIONAL_OVER.format(n=n),
        v,
        "positional share (binned firing-rate test) beyond the shuffled control: random variants minus trained, pooled",
    )


def _scorer_rows(inp: Inputs, scorer: str) -> pd.DataFrame:
    t = inp.table(SCORERS)
    rows = t[(t.scorer == scorer) & t.variant.isin(random_variants(t.variant))].dropna(subset=["auroc"])
    require(len(rows) > 0, f"{SCORERS}.csv has no {scorer!r} rows of random variants")
    return rows


def token_alone_above_chance(inp: Inputs) -> Result:
    rows = _scorer_rows(inp, "token-baseline detection")
    est, lo, hi = mean_auroc(rows, inp.opt.ci_level)
    v = R.above(lo, hi, inp.opt.chance_margin, ref=0.5, what="token-baseline AUROC")
    return Result(
        est,
        lo,
        hi,
        f"latents, then examples ({len(rows)} variant x layer cells)",
        v,
        "token-identity detection (top tokens only, no LLM), random variants, mean over cells",
    )


def single_token_explainer(inp: Inputs) -> Result:
    """The one-token explanation's gap to the token profile within +-auroc_margin, on the random-variant cells where
    the profile beats chance (its interval above 0.5 + chance_margin): elsewhere both are near chance and "as well"
    is built in (not decidable when no cell has that signal)."""
    rows = _scorer_rows(inp, "single-token detection").dropna(subset=["gap", "gap_lo", "gap_hi"])
    require(len(rows) > 0, f"{SCORERS}.csv has no gap of the single-token explainer")
    ref = str(rows.reference.iloc[0]) if "reference" in rows else "token-baseline detection"
    prof = _scorer_rows(inp, ref).set_index(["variant", "layer"])
    edge = 0.5 + inp.opt.chance_margin
    keys = list(zip(rows.variant, rows.layer))
    signal = np.array([k in prof.index and float(prof.loc[k, "auroc_lo"]) > edge for k in keys])
    use = rows[signal] if signal.any() else rows
    sd = [sd_from_ci(a, b, inp.opt.ci_level) for a, b in zip(use.gap_lo, use.gap_hi)]
    est, lo, hi = mean_of_independent(use.gap.to_numpy(float), sd, inp.opt.ci_level)
    lead = float(np.mean([prof.loc[k, "auroc"] for k in zip(use.variant, use.layer) if k in prof.index])) - 0.5
    why = f"a one-token explanation scores at least chance, so it can lose at most the profile's lead ({lead:.3g})"
    bounds = R.Bounds(-lead, 1.0, why) if 0.0 <= lead <= 0.5 else None  # NaN or a profile below chance: unbounded
    v = R.similar(lo, hi, inp.opt.auroc_margin, what="AUROC gap", bounds=bounds)
    # Where the profile itself is near chance, both scorers are, and their gap says nothing about explanations.
    v = R.scale_gate(
        bool(signal.any()),
        f"no random-variant cell's token profile beats chance by more than {inp.opt.chance_margin:g} (its interval "
        f"above {edge:g}): both scorers are near chance, so 'as well' is built in",
        v,
    )
    cells = f"{len(use)} of {len(rows)} variant x layer cells" + (
        f", those where the profile beats {edge:g}" if signal.any() else ""
    )
    return Result(
        est,
        lo,
        hi,
        f"latents, then examples ({cells})",
        v,
        "random variants: 'fires on token X' detection minus the 10-token profile's, mean over cells",
    )


def llm_beyond_tokens(inp: Inputs) -> Result:
    g = inp.table(LLM_MINUS_TOKEN_BASELINE)
    b = llm_backend(g)
    rows = g[(g.backend == b) & g.variant.isin(random_variants(g.variant))].dropna(subset=["gap"])
    require(len(rows) > 0, f"{LLM_MINUS_TOKEN_BASELINE}.csv has no random-variant gap")
    # A cell of one latent has a gap but no interval: the mean keeps its value, the interval is then unknown (NaN),
    # which the rules read as not decidable.
    sd = [sd_from_ci(a, c, inp.opt.ci_level) for a, c in zip(rows.gap_lo, rows.gap_hi)]
    est, lo, hi = mean_of_independent(rows.gap.to_numpy(float), sd, inp.opt.ci_level)
    est = float(rows.gap.mean())
    t = inp.table(AUROC_VS_LAYER)
    ok, why = _informative(inp, t[t.backend == b], b)
    v = R.scale_gate(ok, why, R.similar(lo, hi, inp.opt.auroc_margin, what="LLM minus token-baseline AUROC"))
    return Result(
        est,
        lo,
        hi,
        f"latents ({len(rows)} variant x scorer cells, {int(rows.n_latents.min())}-{int(rows.n_latents.max())} "
        "latents each)",
        v,
        f"{b} minus the token baseline on the same random-variant latents, mean over cells",
    )
