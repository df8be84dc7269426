"""Shared by the benchmarks' ``--quick`` modes (seconds, tiny sizes: a smoke run that the code still works)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_json(name: str) -> Path:
    """Where a ``--quick`` run writes its numbers by default: under build/, never the committed figures/."""
    return ROOT / "build" / f"{name}_quick.json"


def write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")
    return path


def quick_corpus(folder: Path) -> str:
    """A small offline corpus (this package's sources as text documents) as a ``dir:`` corpus source: many
    documents, so the train and test windows can be disjoint by document, and no site-packages scan."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "rsae_utils").rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if len(text) > 400:
            (folder / f"{p.parent.name}_{p.stem}.txt").write_text(text, encoding="utf-8")
    return f"dir:{folder}"
