"""Notebook 10's claims table: the verdict rules (``rules``), the readers of each notebook's tables (``toy_sae``,
``interp``, sharing ``inputs``), and the table builder (``table``) and its markdown
(``markdown``)."""

from rsae_utils.claims.inputs import MissingInput, Options, Result
from rsae_utils.claims.markdown import claims_markdown, readme_block, verdict_counts
from rsae_utils.claims.rules import (
    BY_CONSTRUCTION,
    NEGLIGIBLE,
    NOT_DECIDABLE,
    NOT_REPRODUCED,
    NOT_RUN,
    OPPOSITE,
    OUT_OF_REACH,
    QUALIFIERS,
    REPRODUCED,
    VERDICTS,
    Bounds,
    Verdict,
)
from rsae_utils.claims.table import CLAIMS, COLUMNS, build_claims

__all__ = [
    "BY_CONSTRUCTION",
    "CLAIMS",
    "COLUMNS",
    "NOT_DECIDABLE",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "REPRODUCED",
    "VERDICTS",
    "NEGLIGIBLE",
    "OPPOSITE",
    "OUT_OF_REACH",
    "QUALIFIERS",
    "Bounds",
    "MissingInput",
    "Options",
    "Result",
    "Verdict",
    "build_claims",
    "claims_markdown",
    "readme_block",
    "verdict_counts",
]
