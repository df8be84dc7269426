"""Explainer and the detection and fuzzing scorers over an :class:`LLMBackend`; one tidy row per scored window.

Row columns (see :data:`ROW_COLUMNS`): the caller's metadata (model, variant, layer), then latent, scorer,
backend, window, kind, bin, label, probability, unparsable. ``probability`` is P(1) / (P(0) + P(1)) as the backend
reports it; an answer the backend could not read (None, a non-number, a list of the wrong length) leaves
``probability`` empty and sets ``unparsable`` - it is counted, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsae_utils.autointerp.examples import LatentRecord, Window
from rsae_utils.autointerp.llm.base import LLMBackend
from rsae_utils.autointerp.prompts import (
    Decode,
    active_mask,
    detection_messages,
    explainer_messages,
    fuzz_marks,
    fuzzing_messages,
    mark_text,
    n_negative_marks,
    parse_explanation,
    plain_text,
)

SCORERS = ("detection", "fuzzing")
ROW_COLUMNS = (
    "latent",
    "scorer",
    "backend",
    "window",
    "kind",
    "bin",
    "label",
    "probability",
    "unparsable",
)
_SCORER_CODE = {"detection": 1, "fuzzing": 2}


def check_scorer(scorer: str) -> None:
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; allowed: {', '.join(SCORERS)}")


def fuzzing_marks(rec: LatentRecord, seed: int = 0, mark_frac: float = 0.3) -> dict[int, np.ndarray]:
    """Window id -> mark mask for every scoring window of ``rec`` (deterministic given ``seed``).

    Shared by the LLM fuzzing scorer and the token baseline, so both judge the very same marks.
    """
    n_rand = n_negative_marks([w.acts for w in rec.positives], mark_frac)
    out = {}
    for w in rec.scoring:
        rng = np.random.default_rng([seed, rec.latent, w.window, _SCORER_CODE["fuzzing"]])
        out[w.window] = fuzz_marks(w.acts, w.label, n_rand, rng, mark_frac)
    return out


def scoring_order(rec: LatentRecord, scorer: str, seed: int = 0) -> list[Window]:
    """Positives and negatives shuffled together (seeded), so each batch mixes both."""
    check_scorer(scorer)
    windows = rec.scoring
    rng = np.random.default_rng([seed, rec.latent, _SCORER_CODE[scorer]])
    return [windows[i] for i in rng.permutation(len(windows))]


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    if size < 1:
        raise ValueError("batch size must be >= 1")
    return [items[i : i + size] for i in range(0, len(items), size)]


def clean_probabilities(answer: Any, n: int) -> list[float | None]:
    """A backend's answer as exactly ``n`` probabilities in [0, 1] or None.

    A reply that is not a list of length ``n`` makes the whole batch unparsable (its positions cannot be trusted);
    single entries that are None, NaN, non-numeric or outside [0, 1] become None.
    """
    if not isinstance(answer, (list, tuple)) or len(answer) != n:
        return [None] * n
    out: list[float | None] = []
    for p in answer:
        try:
            v = float(p) if p is not None and not isinstance(p, bool) else None
        except (TypeError, ValueError):
            v = None
        out.append(v if v is not None and math.isfinite(v) and 0.0 <= v <= 1.0 else None)
    return out


def explain(
    rec: LatentRecord, backend: LLMBackend, decode: Decode, mark_frac: float = 0.3, max_tokens: int = 60
) -> tuple[str, str]:
    """(explanation, raw reply) for ``rec`` from its explainer windows, active tokens marked."""
    texts = [mark_text(decode(w.tokens), active_mask(w.acts, mark_frac)) for w in rec.explain]
    raw = backend.generate(explainer_messages(texts), max_tokens=max_tokens)
    return parse_explanation(raw), raw


def score_with_backend(
    rec: LatentRecord,
    explanation: str,
    backend: LLMBackend,
    scorer: str,
    decode: Decode,
    batch_size: int = 5,
    seed: int = 0,
    mark_frac: float = 0.3,
    meta: dict | None = None,
) -> list[dict]:
    """Score every scoring window of ``rec`` with ``scorer`` through ``backend``; one row per window."""
    check_scorer(scorer)
    order = scoring_order(rec, scorer, seed)
    marks = fuzzing_marks(rec, seed, mark_frac) if scorer == "fuzzing" else None
    groups = batches(order, batch_size)
    if scorer == "detection":
        msgs = [detection_messages(explanation, [plain_text(decode(w.tokens)) for w in b]) for b in groups]
    else:
        msgs = [
            fuzzing_messages(explanation, [mark_text(decode(w.tokens), marks[w.window]) for w in b]) for b in groups
        ]
    answers = ask_batches(backend, msgs, [len(b) for b in groups])
    rows: list[dict] = []
    for batch, answer in zip(groups, answers, strict=True):
        rows += example_rows(rec, batch, clean_probabilities(answer, len(batch)), scorer, backend.name, meta)
    return rows


def ask_batches(backend: LLMBackend, msgs: Sequence[list[dict[str, str]]], ns: Sequence[int]) -> list[Any]:
    """Raw answers for every batch; through ``answer_probabilities_many`` (concurrent) when the backend has it."""
    many = getattr(backend, "answer_probabilities_many", None)
    if many is not None and len(msgs) > 1:
        answers = list(many(list(msgs), list(ns)))
        return answers if len(answers) == len(msgs) else [None] * len(msgs)
    return [backend.answer_probabilities(m, n_answers=n) for m, n in zip(msgs, ns, strict=True)]


def example_rows(
    rec: LatentRecord,
    windows: Sequence[Window],
    probs: Sequence[float | None],
    scorer: str,
    backend: str,
    meta: dict | None = None,
) -> list[dict]:
    meta = dict(meta or {})
    return [
        {
            **meta,
            "latent": rec.latent,
            "scorer": scorer,
            "backend": backend,
            "window": w.window,
            "kind": w.kind,
            "bin": w.bin,
            "label": w.label,
            "probability": p,
            "unparsable": p is None,
        }
        for w, p in zip(windows, probs, strict=True)
    ]
