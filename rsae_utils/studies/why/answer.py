"""Notebook 06's tables of the gap to the trained model and its answer in words, computed from the numbers.

The *gap* of a variant at a cell is the trained model's metric minus the variant's (the trained model at the same
factor value where the factor applies to it, such as the SAE width, else at the baseline). A factor value *closes*
the share 1 - gap / gap_at_baseline of the gap: 0 changes nothing, 1 makes the variant's SAEs reconstruct as well
as the trained model's, negative widens it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from rsae_utils.studies.why.seed_intervals import Draws, fmt
from rsae_utils.subject.variants import variant_label

MOST, SOME = 0.5, 0.2  # closing at least half of the gap is "most"; under a fifth is "none of these"
MIN_GAP = 0.05  # a baseline gap smaller than this (in the metric's units) is no gap: nothing to close
FACTOR_WORDS = {
    "width": "widening the SAE (R)",
    "norm_gains": "keeping the norm gains at their trained values",
    "embedding_scale": "scaling the token embedding up",
    "output_scale": "drawing the output projections with a depth-scaled std (wang_init's ratio)",
    "train_tokens": "changing the SAE's training budget",
}


def _matches(values: pd.Series, target: Any) -> pd.Series:
    """Where ``values`` equal ``target``: as numbers when both are (4 == 4.0), else as text ("redrawn")."""
    try:
        return (pd.to_numeric(values) - float(target)).abs() < 1e-9
    except (TypeError, ValueError):
        return values.astype(str) == str(target)


def gap_table(
    table: pd.DataFrame, baselines: Mapping[str, Any], metric: str = "explained_variance", reference: str = "trained"
) -> pd.DataFrame:
    """Per (factor, layer, variant other than ``reference``, value): the variant's and the reference's ``metric``,
    the gap, and the share of the baseline gap closed. ``baselines``: {factor: the value notebook 03 uses}."""
    rows = []
    for (factor, layer), sub in table.groupby(["factor", "layer"], sort=False):
        base_val = baselines.get(factor)
        ref_rows = sub[sub.variant == reference]
        base_r = baselines.get("width")
        ref_base = table[
            (table.factor == "width") & (table.layer == layer) & (table.variant == reference) & (table["R"] == base_r)
        ][metric]
        ref_base = float(ref_base.iloc[0]) if len(ref_base) else np.nan
        for v, g in sub[sub.variant != reference].groupby("variant", sort=False):
            at_base = g[_matches(g.value, base_val)]
            if not len(at_base):
                continue
            cur = []
            is_base = _matches(g.value, base_val).to_numpy()
            for (_, r), b in zip(g.iterrows(), is_base):
                ref = ref_rows[_matches(ref_rows.value, r.value)][metric] if len(ref_rows) else ref_rows[metric]
                ref_v = float(ref.iloc[0]) if len(ref) else ref_base
                cur.append(
                    {
                        "factor": factor,
                        "layer": int(layer),
                        "variant": v,
                        "value": r.value,
                        "is_baseline": bool(b),
                        metric: float(r[metric]),
                        f"{reference}_{metric}": ref_v,
                        "gap": ref_v - float(r[metric]),
                    }
                )
            gap0 = next(x["gap"] for x in cur if x["is_baseline"])
            for x in cur:
                x["gap_closed"] = 1.0 - x["gap"] / gap0 if np.isfinite(gap0) and gap0 >= MIN_GAP else np.nan
            rows += cur
    return pd.DataFrame(rows)


UPWARD_ONLY = ("width", "train_tokens")  # a narrower SAE or fewer tokens is no cure: only larger values are candidates


def _below_baseline(gaps: pd.DataFrame) -> pd.Series:
    """Rows of an UPWARD_ONLY factor whose value lies below that factor's baseline value."""
    out = pd.Series(False, index=gaps.index)
    for f in UPWARD_ONLY:
        rows = gaps.factor == f
        base = pd.to_numeric(gaps[rows & gaps.is_baseline].value, errors="coerce")
        if rows.any() and len(base):
            out |= rows & (pd.to_numeric(gaps.value.where(rows), errors="coerce") < float(base.iloc[0]))
    return out


def best_per_factor(gaps: pd.DataFrame, layers: Sequence[int]) -> pd.DataFrame:
    """Per (factor, variant): the value that closes most of the gap, averaged over ``layers``; for the width and the
    training budget only values above the baseline count (a smaller one can "close" the gap by making the trained
    model's SAE worse, which answers nothing; the budget sentence reports that slope)."""
    sub = gaps[gaps.layer.isin(list(layers)) & ~gaps.is_baseline & ~_below_baseline(gaps)] if len(gaps) else gaps
    sub = sub.dropna(subset=["gap_closed"]) if len(sub) else sub
    if not len(sub):
        return pd.DataFrame(columns=["factor", "variant", "value", "gap_closed"])
    mean = sub.groupby(["factor", "variant", "value"], sort=False).gap_closed.mean().reset_index()
    idx = mean.groupby(["factor", "variant"], sort=False).gap_closed.idxmax().dropna()
    return mean.loc[idx].reset_index(drop=True)


_FORMATS = {  # formatted only for their own factor: "redrawn" is no number
    "width": lambda v: f"R = {int(float(v))}",
    "embedding_scale": lambda v: f"x{float(v):g}",
    "output_scale": lambda v: f"outputs x{float(v):.3g}",
    "train_tokens": lambda v: f"{int(v):,} tokens",
    "norm_gains": lambda v: f"gains {v}",
}


def baselines(base_expansion: int, train_tokens: int) -> dict[str, Any]:
    """Every factor's baseline value: notebook 03's options at R = ``base_expansion`` and its budget."""
    return {
        "width": base_expansion,
        "norm_gains": "redrawn",
        "embedding_scale": 1.0,
        "output_scale": 1.0,
        "train_tokens": train_tokens,
    }


def _fmt_value(factor: str, value: Any) -> str:
    return _FORMATS.get(factor, str)(value)


def answer(
    gaps: pd.DataFrame,
    stats: pd.DataFrame,
    table: pd.DataFrame,
    baselines: Mapping[str, Any],
    layers: Sequence[int],
    metric: str = "explained_variance",
    labels: Mapping[str, str] | None = None,
    draws: Draws = None,
) -> list[str]:
    """The notebook's answer, sentence by sentence, from the tables (no number in it is typed by hand). ``table``:
    the sweep's seed means; ``draws``: its seed draws (:func:`rsae_utils.studies.why.seed_intervals.seed_draws`),
    which put an interval over SAE seeds on every SAE number (``gaps`` is ``gap_table`` of ``table``)."""
    lab = {**{v: variant_label(v) for v in set(gaps.get("variant", [])) | set(stats.variant)}, **(labels or {})}
    out: list[str] = []
    deep = max(layers)
    s = stats[(stats.source == stats.variant) & (stats.layer == deep)].set_index("variant")
    if "trained" in s.index:
        others = ", ".join(f"{lab.get(v, v)} {s.token_share_adj[v]:.2f}" for v in s.index if v != "trained")
        dims = ", ".join(f"{lab.get(v, v)} {s.effective_dim[v]:.0f}" for v in s.index if v != "trained")
        out.append(
            f"At layer {deep}, token identity explains {s.token_share_adj['trained']:.2f} of the trained "
            f"model's residual variance (adjusted share, chance removed) against {others}; its variance "
            f"spreads over an effective {s.effective_dim['trained']:.0f} dimensions against {dims}."
        )
        l0 = stats[(stats.source == stats.variant) & (stats.layer == min(stats.layer))].set_index("variant")
        growth = (s.norm_median / l0.norm_median).dropna()
        if len(growth) > 1:
            out.append(
                f"From layer {int(min(stats.layer))} to {deep} the median residual norm grows "
                + ", ".join(f"{growth[v]:.1f}x ({lab.get(v, v)})" for v in growth.index)
                + "."
            )
    best = best_per_factor(gaps, layers)
    gaps_d = [gap_table(d, baselines, metric) for d in draws] if draws and len(best) else None
    for _, b in best.iterrows():
        pick = partial(_pick, factor=b.factor, variant=b.variant, layers=layers)
        g = pick(gaps)
        base = g[g.is_baseline].set_index("layer")[metric]
        at = g[_matches(g.value, b.value)].set_index("layer")
        parts = []
        for x in [x for x in at.index if x in base.index]:
            ev0 = fmt(base[x], gaps_d, partial(_cell, pick=pick, layer=x, value=None, col=metric), ".2f")
            ev1 = fmt(at[metric][x], gaps_d, partial(_cell, pick=pick, layer=x, value=b.value, col=metric), ".2f")
            parts.append(f"layer {x}: {ev0} -> {ev1} (trained {at[f'trained_{metric}'][x]:.2f})")
        what = FACTOR_WORDS.get(b.factor, b.factor)
        what = what[:1].upper() + what[1:]  # not .capitalize(): "SAE (R)" keeps its capitals
        change = f"{_fmt_value(b.factor, baselines.get(b.factor))} -> {_fmt_value(b.factor, b.value)}"
        closed = fmt(100 * b.gap_closed, gaps_d, partial(_closed, pick=pick, value=b.value), ".0f")
        out.append(
            f"{what} ({change}) moves {lab.get(b.variant, b.variant)}'s {metric.replace('_', ' ')} "
            f"{'; '.join(parts)}: it closes {closed}% of the gap on average over layers {list(layers)}."
        )
    if not len(best):
        out.append(
            f"Answer: at the baseline no random variant's SAE falls {MIN_GAP} or more short of the trained "
            f"model's {metric.replace('_', ' ')} at layers {list(layers)}, so in this run there is no gap for "
            f"a factor to close."
        )
    else:
        top = best.loc[best.gap_closed.idxmax()]
        words = FACTOR_WORDS.get(top.factor, top.factor)
        if top.gap_closed >= MOST:
            out.append(f"Answer: {words} closes most of the gap ({top.gap_closed:.0%} for {lab.get(top.variant)}).")
        elif top.gap_closed >= SOME:
            out.append(
                f"Answer: no single factor closes half of the gap; the largest share is {words} "
                f"({top.gap_closed:.0%} for {lab.get(top.variant)})."
            )
        else:
            out.append(
                f"Answer: none of these factors makes the random variants' SAEs look like the trained model's "
                f"(the largest share of the gap closed is {top.gap_closed:.0%}, by {words})."
            )
    out += _link_sentence(stats, table, baselines, metric, draws)
    return out + ([SEED_NOTE] if draws else [])


SEED_NOTE = (
    "Brackets: 95% intervals over SAE seeds (each SAE's seeds' spread pooled per measure; an SAE trained with one "
    "seed, such as the R = 64 ones, borrows it)."
)


def _pick(gaps: pd.DataFrame, factor: str, variant: str, layers: Sequence[int]) -> pd.DataFrame:
    return gaps[(gaps.factor == factor) & (gaps.variant == variant) & gaps.layer.isin(list(layers))]


def _cell(gaps: pd.DataFrame, pick: Any, layer: int, value: Any, col: str) -> float:
    """``col`` of the picked rows at ``layer`` and factor ``value`` (None: the baseline)."""
    g = pick(gaps)
    g = g[(g.layer == layer) & (g.is_baseline if value is None else _matches(g.value, value))]
    return float(g[col].iloc[0]) if len(g) else float("nan")


def _closed(gaps: pd.DataFrame, pick: Any, value: Any) -> float:
    """100 x the mean share of the gap closed by factor ``value`` over the picked layers."""
    g = pick(gaps)
    return 100 * float(g[_matches(g.value, value)].gap_closed.mean())


LINKS = {
    "token_share_adj": "token-identity share",
    "effective_dim": "effective dimension",
    "norm_median": "median norm",
}


def _link_table(stats: pd.DataFrame, table: pd.DataFrame, baselines: Mapping[str, Any]) -> pd.DataFrame:
    base_r, base_t = baselines.get("width"), baselines.get("train_tokens")
    base = table[(table["R"] == base_r) & (table.train_tokens == base_t)]
    base = base.drop_duplicates(["source", "layer"])
    return base.merge(stats[["source", "layer", *LINKS]], on=["source", "layer"])


def _link_sentence(
    stats: pd.DataFrame,
    table: pd.DataFrame,
    baselines: Mapping[str, Any],
    metric: str,
    draws: Draws = None,
) -> list[str]:
    """How the SAE metric follows the statistics of its residual stream (Spearman, over every cache and layer at
    the base width and budget; with ``draws``, an interval over SAE seeds)."""
    m = _link_table(stats, table, baselines)
    if len(m) < 4:
        return []
    rho = {c: m[metric].corr(m[c], method="spearman") for c in LINKS}
    strongest = max(rho, key=lambda c: abs(rho[c]) if np.isfinite(rho[c]) else -1)
    linked = [_link_table(stats, d, baselines) for d in draws or []]

    def rho_of(c: str) -> str:
        return fmt(rho[c], linked, lambda x: x[metric].corr(x[c], method="spearman"), ".2f")

    return [
        f"Across the {len(m)} (cache, layer) pairs at the base width, the SAE's {metric.replace('_', ' ')} has "
        f"Spearman correlation "
        + ", ".join(f"{rho_of(c)} with the residual stream's {w}" for c, w in LINKS.items())
        + f"; the strongest link is the {LINKS[strongest]}."
    ]


ARCH_MARGIN = 0.1  # token-identity shares (adjusted) closer than this count as "about the same" across architectures


def _mean_ev(table: pd.DataFrame, variant: str, layers: Sequence[int], tokens: int, r: Any, metric: str) -> float:
    g = table[
        (table.variant == variant) & table.layer.isin(list(layers)) & (table.train_tokens == tokens) & (table["R"] == r)
    ].drop_duplicates(["source", "layer"])
    g = g[g.source == variant]
    return float(g[metric].mean()) if len(g) else float("nan")


def budget_sentences(
    table: pd.DataFrame,
    budgets: Sequence[int],
    base_r: Any,
    layers: Sequence[int],
    metric: str = "explained_variance",
    labels: Mapping[str, str] | None = None,
    reference: str = "trained",
) -> list[str]:
    """How each variant's ``metric`` (mean over ``layers``, at ``base_r``) moves between the smallest and the
    largest budget, and what that does to the gap to ``reference``; with the limit of such a slope."""
    budgets = sorted({int(b) for b in budgets})
    if len(budgets) < 2:
        return []
    lo, hi = budgets[0], budgets[-1]
    lab = labels or {}
    rows = {
        v: (_mean_ev(table, v, layers, lo, base_r, metric), _mean_ev(table, v, layers, hi, base_r, metric))
        for v in dict.fromkeys(table[table.factor == "train_tokens"].variant)
    }
    rows = {v: x for v, x in rows.items() if np.isfinite(x[0]) and np.isfinite(x[1])}
    if not rows:
        return []
    moves = "; ".join(f"{lab.get(v, variant_label(v))} {a:.2f} -> {b:.2f}" for v, (a, b) in rows.items())
    out = (
        f"Training on {hi:,} instead of {lo:,} tokens ({hi / lo:.0f}x) moves the mean {metric.replace('_', ' ')} "
        f"over layers {list(layers)}: {moves}."
    )
    if reference in rows:
        ref = rows[reference]
        gaps = [
            f"{lab.get(v, variant_label(v))} {ref[0] - a:.2f} -> {ref[1] - b:.2f}"
            for v, (a, b) in rows.items()
            if v != reference
        ]
        if gaps:
            out += " The gap to the trained model goes " + "; ".join(gaps) + "."
    out += (
        " This slope says whether the gap shrinks with more tokens in this range; it cannot say what the "
        "paper's 100M tokens would give (notebook 03's cache holds ~41k training tokens, so larger budgets "
        "here would only repeat them)."
    )
    return [out]


def architecture_sentences(
    stats: pd.DataFrame,
    table: pd.DataFrame,
    neox: str,
    against: str = "step0",
    metric: str = "explained_variance",
    labels: Mapping[str, str] | None = None,
    blocks: Mapping[str, int] | None = None,
) -> list[str]:
    """Token-identity share, norm growth and SAE ``metric`` of the second architecture (variant ``neox``) next to
    SmolLM2's ``against`` variant at the layer indices both have (``table``: their SAE rows at the base width);
    ``blocks``: {variant: its model's number of blocks}, to say how deep a layer is in relative terms."""
    lab = {neox: neox, against: variant_label(against), **(labels or {})}
    st = stats[stats.source == stats.variant]
    a, b = st[st.variant == neox].set_index("layer"), st[st.variant == against].set_index("layer")
    shared = sorted(set(a.index) & set(b.index))
    if not shared:
        return []
    deep, first = max(shared), min(shared)
    ln, la = lab[neox], lab[against]
    shares = "; ".join(f"layer {x}: {a.token_share_adj[x]:.2f} vs {b.token_share_adj[x]:.2f}" for x in shared)
    out = [f"Token identity explains (adjusted share) of the residual variance of the {ln} against {la}: {shares}."]
    if deep > first:
        depth = ""
        if blocks and neox in blocks and against in blocks:
            depth = f"; layer {deep} is block {deep + 1} of {blocks[neox]} in the {ln}, of {blocks[against]} in {la}"
        out.append(
            f"From layer {first} to {deep} the median residual norm grows "
            f"{a.norm_median[deep] / a.norm_median[first]:.1f}x ({ln}) against "
            f"{b.norm_median[deep] / b.norm_median[first]:.1f}x ({la}){depth}."
        )
    diff = float(a.token_share_adj[deep] - b.token_share_adj[deep])
    if diff >= ARCH_MARGIN:
        verdict = f"more token identity survives in the {ln} than in {la} at layer {deep}: the architecture matters"
    elif diff <= -ARCH_MARGIN:
        verdict = f"less token identity survives in the {ln} than in {la} at layer {deep}: the architecture matters"
    else:
        verdict = (
            f"about as much token identity survives in the {ln} as in {la} at layer {deep} (within "
            f"{ARCH_MARGIN}): the architecture alone does not change it"
        )
    sae = table[table.source.isin([neox, against])].drop_duplicates(["source", "layer"])
    ev = sae.pivot_table(index="layer", columns="source", values=metric)
    both = [x for x in ev.index if neox in ev and against in ev and ev.notna().loc[x].all()]
    if both:
        verdict += "; their SAEs at the base width explain " + "; ".join(
            f"layer {x}: {ev.loc[x, neox]:.2f} vs {ev.loc[x, against]:.2f}" for x in both
        )
    out.append(
        f"Architecture: {verdict}. (A GPT-NeoX of Pythia's shape at initialization stands for neither a "
        f"trained Pythia nor Pythia re-randomized from its trained weights' statistics.)"
    )
    return out
