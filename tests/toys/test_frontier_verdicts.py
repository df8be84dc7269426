"""Notebook 02's verdicts in words (``toys.frontier``): built from a small known comparison table."""

from __future__ import annotations

import math

import pandas as pd

from rsae_utils.toys import frontier as fr


def _comparison() -> pd.DataFrame:
    rows = [
        # raw vs its Gaussian control: above on both measures
        ("l0", "raw", "gaussian", 0.25, 0.8, 0.0, 1.0, 32.0),
        ("hoyer", "raw", "gaussian", 0.1, 0.6, 0.05, 0.2, 0.9),
        # embedding rows vs their control: above on L0, crossing on Hoyer
        ("l0", "embedding", "embedding_gaussian", 0.05, 0.55, 0.05, 2.0, 64.0),
        ("hoyer", "embedding", "embedding_gaussian", 0.0, 0.4, 0.4, 0.1, 0.8),
        # no shared range
        ("l0", "embedding", "raw", math.nan, math.nan, math.nan, math.nan, math.nan),
    ]
    df = pd.DataFrame(rows, columns=["measure", "source", "reference", "gap", "share_above", "share_below", "lo", "hi"])
    df["verdict"] = [fr.verdict(a, b) for a, b in zip(df.share_above, df.share_below, strict=True)]
    return df


def test_verdict_markdown_from_a_known_table():
    names = fr.source_names("SmolLM2")
    text = fr.verdict_markdown(_comparison(), names).split("\n")
    assert text[0] == "**raw toy data vs the toy Gaussian control**: above on 2 of 2 measures."
    assert text[1] == (
        "- against L0: the frontier of raw toy data is **above** that of the toy Gaussian control "
        "(mean EV difference +0.250; higher over 80% and lower over 0% of 1..32)."
    )
    assert text[2].startswith("- against Hoyer sparsity: the frontier of raw toy data is **above**")
    assert text[3] == "**SmolLM2 embedding rows vs their matched Gaussian**: above on 1 of 2 measures."
    assert "is **crossing** that of their matched Gaussian" in text[5]
    assert text[6] == "**SmolLM2 embedding rows vs raw toy data**: above on 0 of 1 measures."
    assert text[7] == "- against L0: SmolLM2 embedding rows are not comparable with raw toy data (no shared range)."
    assert len(text) == 8


def test_sparse_structure_line_says_yes_only_when_above_on_every_measure():
    line = fr.sparse_structure_line(_comparison(), fr.source_names("SmolLM2"))
    assert line == (
        "sources with real sparse structure above their Gaussian control on every measure: "
        "raw toy data: yes, SmolLM2 embedding rows: no"
    )


def test_points_and_comparison_tables():
    toy = pd.DataFrame({"condition": ["raw"], "fvu": [0.25]})
    emb = pd.DataFrame({"condition": ["embedding"], "fvu": [0.5]})
    points = fr.points_table(toy, emb)
    assert points.ev.tolist() == [0.75, 0.5] and list(points.columns) == ["condition", "fvu", "ev"]
    assert ("embedding", "embedding_gaussian") in fr.COMPARISONS
