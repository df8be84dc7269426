"""Shared by the benchmarks' ``--quick`` modes (seconds, tiny sizes: a smoke run that the code still works)."""

from __future__ import annotations

import json
from pathlib import Path

from rsae_utils.repro import provenance
from rsae_utils.store import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def quick_json(name: str) -> Path:
    """Where a ``--quick`` run writes its numbers by default: under build/, never the committed figures/."""
    return ROOT / "build" / f"{name}_quick.json"


def write_json(path: Path, obj: dict) -> Path:
    """Write a benchmark's numbers with what made them (versions, platform, git revision), atomically: an
    interrupted run leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps({**obj, "provenance": provenance()}, indent=1) + "\n")


def quick_corpus(folder: Path) -> str:
    """A small offline corpus (this package's sources as text documents) as a ``dir:`` corpus source: many
    documents, so the train and test windows can be disjoint by document, and no site-packages scan."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "rsae_utils").rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if len(text) > 400:
            (folder / f"{p.parent.name}_{p.stem}.txt").write_text(text, encoding="utf-8")
    return f"dir:{folder}"
