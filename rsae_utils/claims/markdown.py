"""The claims table as markdown: one row per claim with its value, interval or range, training budget, verdict and
reason; the README's copy of it; verdict counts."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from rsae_utils.claims.inputs import fmt_num
from rsae_utils.claims.rules import VERDICTS
from rsae_utils.claims.table import rel_link


def _text(row: pd.Series, col: str) -> str:
    """A text cell ("" when empty; a CSV read back gives NaN for an empty one, and older tables lack the column)."""
    x = row.get(col, "")
    return x if isinstance(x, str) else ""


def _qualifier(row: pd.Series) -> str:
    """The row's qualifier ("" when none; a CSV read back gives NaN for an empty one)."""
    q = row.get("qualifier", "")
    return q if isinstance(q, str) else ""


def _training_cell(row: pd.Series) -> str:
    """ "61,440; settled by ..." for a claim on SAEs, "" otherwise (a CSV read back gives NaN for empty cells)."""
    tokens, settled = row.get("sae_tokens", math.nan), row.get("settled", "")
    settled = settled if isinstance(settled, str) else ""
    if not isinstance(tokens, int | float) or not math.isfinite(tokens):
        return settled
    return f"{tokens:,.0f}" + (f"; {settled}" if settled else "")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_markdown(table: pd.DataFrame, link_from: Path | str = ".", root: Path | str | None = None) -> str:
    """The table as markdown; figure links relative to ``link_from`` (the folder the markdown file sits in), given
    ``root``, the folder the ``figure`` column is relative to (default: the same folder)."""
    root = Path(root) if root is not None else Path(link_from)
    head = [
        "claim",
        "source",
        "paper (PAPER.md)",
        "this run [95% interval]",
        "interval over",
        "range [min, max] (not an interval)",
        "SAE training tokens; settled in the study?",
        "verdict",
        "why",
        "figure",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        val = fmt_num(r.value)
        if val and (fmt_num(r.lo) or fmt_num(r.hi)):
            val += f" [{fmt_num(r.lo)}, {fmt_num(r.hi)}]"
        rng = ""
        if fmt_num(r.get("range_lo", math.nan)) or fmt_num(r.get("range_hi", math.nan)):
            rng = f"[{fmt_num(r.range_lo)}, {fmt_num(r.range_hi)}] {_text(r, 'range_over')}"
        link = rel_link(root / r.figure, Path(link_from))
        name = Path(r.figure).name
        cells = [
            r.claim,
            r.source,
            r.paper,
            f"{val}<br>{r.measure}" if val else "",
            _text(r, "interval_over") or ("none (one run)" if rng else ""),
            rng,
            _training_cell(r),
            f"**{r.verdict}**" + (f" ({_qualifier(r)})" if _qualifier(r) else ""),
            r.reason,
            f"[{name}]({link})",
        ]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_counts(table: pd.DataFrame, qualified: bool = False) -> dict[str, int]:
    """Rows per verdict, in the order of ``VERDICTS`` (a result built into its scorer is "not decidable", never
    "reproduced"); ``qualified`` counts each verdict with its qualifier apart ("not reproduced (negligible)")."""
    counts: dict[str, int] = {}
    for v in VERDICTS:
        rows = table[table.verdict == v]
        quals = [_qualifier(r) if qualified else "" for _, r in rows.iterrows()]
        for q in sorted(set(quals)):
            counts[f"{v} ({q})" if q else v] = quals.count(q)
    return counts


def readme_block(md: str, figures_rel: str = "figures") -> str:
    """``claims.md`` as the README shows it: the same text, its figure links (relative to the figures folder)
    prefixed with ``figures_rel`` (a test keeps the README's copy equal to this)."""
    return re.sub(r"\]\((?![a-z]+:|/)([^)]+)\) \|$", rf"]({figures_rel}/\1) |", md.strip(), flags=re.M) + "\n"
