"""The README's claim paragraphs cite only numbers the committed tables contain.

A passage between ``<!-- claims-cited: T1, T2 -->`` and ``<!-- /claims-cited -->`` names the tables
(``figures/T.csv``) its numbers come from. Every decimal number and every percentage in it (a range ``a-b%`` makes
both ends percentages; signs are ignored, as prose says "costs 0.08" of a gap of -0.08) must equal, rounded to the
digits it is quoted with, a number of one of those tables: a numeric cell, or a number written in a text cell (the
claims table's reasons). Plain integers (layers, widths, counts) are not checked.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- claims-cited: ([^>]*?) -->(.*?)<!-- /claims-cited -->", re.S)
# a number, optionally a range "a-b", then an optional percent sign
QUOTED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*(?:-|to)\s*(\d+(?:\.\d+)?))?\s*(%?)")
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
MIN_BLOCKS = 5  # the marked passages of the README; fewer means a marker was lost


def quoted_numbers(text: str) -> list[tuple[str, float, float]]:
    """(as written, value, half a unit of its last digit) for each decimal or percent number of ``text``, outside
    inline code, link targets and HTML comments."""
    text = re.sub(r"`[^`]*`|\]\([^)]*\)|<!--.*?-->", " ", text, flags=re.S)
    out = []
    for m in QUOTED.finditer(text):
        pct = m.group(3) == "%"
        for tok in filter(None, (m.group(1), m.group(2))):
            if "." not in tok and not pct:
                continue
            digits = len(tok.split(".")[1]) if "." in tok else 0
            scale = 100.0 if pct else 1.0
            out.append((tok + ("%" if pct else ""), float(tok) / scale, 0.5 * 10.0**-digits / scale))
    return out


def table_numbers(path: Path) -> list[float]:
    """Every number of a CSV, in absolute value: numeric cells and the numbers written inside text cells."""
    vals = []
    with path.open(newline="") as f:
        for row in csv.reader(f):
            for cell in row:
                vals += [abs(float(x)) for x in NUMBER.findall(cell)]
    return vals


def unmatched(text: str, tables: list[Path]) -> list[str]:
    vals = [v for t in tables for v in table_numbers(t)]
    return [tok for tok, x, tol in quoted_numbers(text) if not any(abs(v - x) <= tol + 1e-9 for v in vals)]


def test_quoted_numbers_known_answers(tmp_path):
    got = quoted_numbers("best 0.82 at L1 = 0.32, 14% at layer 9, shares of 0.1-0.2%, R = 16, `0.77` [x](f_0.5.png)")
    assert [(t, pytest.approx(x), pytest.approx(tol)) for t, x, tol in got] == [
        ("0.82", 0.82, 0.005),
        ("0.32", 0.32, 0.005),
        ("14%", 0.14, 0.005),
        ("0.1%", 0.001, 0.0005),
        ("0.2%", 0.002, 0.0005),
    ]
    t = tmp_path / "t.csv"
    t.write_text("a,reason\n0.8173,lies below 0.9: ends (0.375; -0.202)\n0.1406,x\n")
    assert unmatched("0.82, 0.38 and 0.20, 14%, 0.9, -0.202", [t]) == []
    assert unmatched("0.81, 0.36, 15%, 0.91", [t]) == ["0.81", "0.36", "15%", "0.91"]


def test_readme_claim_paragraphs_cite_only_numbers_in_the_tables():
    readme = (ROOT / "README.md").read_text()
    blocks = BLOCK.findall(readme)
    assert len(blocks) >= MIN_BLOCKS, f"expected at least {MIN_BLOCKS} claims-cited passages, found {len(blocks)}"
    assert readme.count("<!-- claims-cited:") == readme.count("<!-- /claims-cited -->") == len(blocks)
    for names, text in blocks:
        tables = [ROOT / "figures" / f"{n.strip()}.csv" for n in names.split(",")]
        assert all(t.is_file() for t in tables), f"a claims-cited passage names a missing table: {names}"
        assert quoted_numbers(text), f"a claims-cited passage quotes no number: {text[:80]!r}"
        bad = unmatched(text, tables)
        assert not bad, f"numbers not in {names}: {bad} in {' '.join(text.split())[:160]!r}"
