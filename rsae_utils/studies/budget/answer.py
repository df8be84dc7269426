"""The training-budget study's answer in words, from its tables: which measures have not settled at the largest
budget, how each trained-minus-random gap moves, and what repetition costs. Every number comes from the tables."""

from __future__ import annotations

import pandas as pd

from rsae_utils.subject.variants import variant_label


def _fmt(x: float) -> str:
    return f"{x:+.3f}"


def settled_lines(curves: pd.DataFrame) -> list[str]:
    """One line per measure: the (variant, layer) curves still moving more than their tolerance per 4x."""
    out = []
    for m, g in curves.groupby("measure", sort=False):
        moving = g[g["settled"] == False]  # noqa: E712 - None (too few points) is neither
        if moving.empty:
            out.append(f"- {m}: settled everywhere (|change over the last 4x| <= {g['tol'].iloc[0]})")
            continue
        parts = [
            f"{variant_label(r.variant)} L{r.layer} {_fmt(r.change_last_step)}"
            + (f" (limit ~{r.limit:.3f})" if pd.notna(r.limit) else "")
            for r in moving.itertuples()
        ]
        out.append(f"- {m}: still moving (tolerance {g['tol'].iloc[0]}): " + "; ".join(parts))
    return out


def gap_lines(gaps: pd.DataFrame) -> list[str]:
    """One line per (measure, layer): each random variant's gap at the first and last budget, and how its size
    moved over the last 4x."""
    out = []
    for (m, layer), g in gaps.groupby(["measure", "layer"], sort=False):
        parts = [
            f"{variant_label(r.variant)} {_fmt(r.gap_first)} -> {_fmt(r.gap_last)} (last 4x: {r.trend})"
            for r in g.itertuples()
        ]
        out.append(f"- {m}, layer {layer}: trained minus " + "; ".join(parts))
    return out


def repetition_lines(table: pd.DataFrame) -> list[str]:
    """Per (variant, layer) of the repetition pair: held-out EV and FVU on the repetition run's own windows, for the
    main run (one pass over 4x the text) and the repetition run, at the same budget."""
    rep = table[table["run"] == "repeat"]
    out = []
    for r in rep.itertuples():
        main = table[
            (table["run"] == "main")
            & (table["seed"] == r.seed)
            & (table["variant"] == r.variant)
            & (table["layer"] == r.layer)
            & (table["tokens"] == r.tokens)
        ]
        if main.empty:
            continue
        m = main.iloc[0]
        out.append(
            f"- {variant_label(r.variant)} L{r.layer} at {r.tokens:,} tokens: held-out EV {m.explained_variance:.3f} "
            f"({m.unique_tokens:,} unique tokens, {m.epochs:.2f} epochs) vs {r.explained_variance:.3f} "
            f"({r.unique_tokens:,}, {r.epochs:.2f} epochs); FVU on the repeated windows "
            f"{m.train_fvu_repeat_windows:.3f} vs {r.train_fvu_repeat_windows:.3f}"
        )
    return out


def seed_lines(table: pd.DataFrame, measures=("explained_variance", "ev_top_pcs_out", "cos_sim")) -> list[str]:
    """Per measure: the largest difference between the two seeds over every (variant, layer, budget) both have,
    the seed spread the curves' changes are read against."""
    main = table[table["run"] == "main"]
    seeds = sorted(main["seed"].unique())
    if len(seeds) < 2:
        return []
    key = ["variant", "layer", "tokens"]
    a = main[main["seed"] == seeds[0]].set_index(key)
    b = main[main["seed"] == seeds[1]].set_index(key)
    both = a.index.intersection(b.index)
    out = []
    for m in measures:
        if m in a and m in b and len(both):
            d = (a.loc[both, m] - b.loc[both, m]).abs()
            out.append(f"- {m}: at most {d.max():.3f} between seeds {seeds[0]} and {seeds[1]} ({len(both)} SAE pairs)")
    return out


def answer_text(table: pd.DataFrame, curves: pd.DataFrame, gaps: pd.DataFrame, nb03_tokens: int) -> str:
    """The answer cell's text (module docstring)."""
    top = int(table["tokens"].max())
    lines = [
        f"Budgets up to {top:,} tokens per SAE; notebook 03's SAEs train on {nb03_tokens:,}.",
        "Settled over the last 4x?",
        *settled_lines(curves),
        "Trained minus each random variant, first -> last budget (and how its size moved over the last 4x):",
        *gap_lines(gaps),
    ]
    spread = seed_lines(table)
    if spread:
        lines += ["Seed spread (same data and batch order, another initialisation):", *spread]
    rep = repetition_lines(table)
    if rep:
        lines += ["What repetition costs (same budget, a quarter of the text):", *rep]
    return "\n".join(lines)
