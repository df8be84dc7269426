"""Notebook 09's claims table: the verdict rules (``rules``), the readers of each notebook's tables (``toy_sae``,
``interp``, sharing ``inputs``), and the table builder with its markdown (``table``)."""

from rsae_utils.claims.inputs import MissingInput, Options, Result
from rsae_utils.claims.rules import NOT_DECIDABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS, Verdict
from rsae_utils.claims.table import CLAIMS, COLUMNS, build_claims, claims_markdown, readme_block, verdict_counts

__all__ = [
    "CLAIMS",
    "COLUMNS",
    "NOT_DECIDABLE",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "REPRODUCED",
    "VERDICTS",
    "MissingInput",
    "Options",
    "Result",
    "Verdict",
    "build_claims",
    "claims_markdown",
    "readme_block",
    "verdict_counts",
]
