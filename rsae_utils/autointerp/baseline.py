"""Token-identity baseline: how much of an auto-interp score token identity alone explains (no LLM).

Its "explanation" is the latent's top ``top_k`` token ids by activation mass over the explainer windows, each
with its *share* of the total mass. It scores windows exactly where the LLM scorers do, on the same windows and
(for fuzzing) the same marks, and writes the same tidy rows with ``backend = "token-baseline"``:

* detection: the summed share of the top tokens that occur in the window (each distinct id counted once);
  in [0, 1], 0 when none occurs;
* fuzzing: the fraction of marked tokens whose id is among the top tokens (0 when nothing is marked).

A latent that fires on one token scores AUROC ~1 on both; a latent firing at random scores ~0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsae_utils.autointerp.examples import LatentRecord, Window
from rsae_utils.autointerp.prompts import Decode
from rsae_utils.autointerp.scorers import check_scorer, example_rows, fuzzing_marks, scoring_order
from rsae_utils.tokenstats import token_mass

BASELINE_NAME = "token-baseline"


@dataclass
class TokenProfile:
    ids: np.ndarray  # top token ids, heaviest first
    share: np.ndarray  # each one's share of the latent's total explainer activation mass

    def share_of(self) -> dict[int, float]:
        return {int(t): float(s) for t, s in zip(self.ids, self.share, strict=True)}


def explainer_token_mass(rec: LatentRecord) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, activation mass) over ``rec``'s explainer windows, heaviest first; empty without windows.
    What the token profile and the single-token explanation are both read from."""
    if not rec.explain:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    toks = np.concatenate([np.asarray(w.tokens) for w in rec.explain])
    acts = np.concatenate([np.asarray(w.acts, dtype=float) for w in rec.explain])
    return token_mass(toks, acts)


def token_profile(rec: LatentRecord, top_k: int = 10) -> TokenProfile:
    """Top ``top_k`` tokens of ``rec`` by activation mass over its explainer windows."""
    ids, mass = explainer_token_mass(rec)
    total = mass.sum()
    share = mass / total if total > 0 else mass
    return TokenProfile(ids=ids[:top_k], share=share[:top_k])


def describe(profile: TokenProfile, decode: Decode | None = None) -> str:
    """Human-readable baseline explanation, e.g. ``tokens: ' the' 62%, ' a' 20%``."""
    if profile.ids.size == 0:
        return "tokens: (none)"
    names = decode(profile.ids.tolist()) if decode else [str(int(t)) for t in profile.ids]
    return "tokens: " + ", ".join(f"{n!r} {s:.0%}" for n, s in zip(names, profile.share, strict=True))


def detection_score(profile: TokenProfile, tokens: Sequence[int]) -> float:
    shares = profile.share_of()
    total = sum(shares.get(int(t), 0.0) for t in set(int(t) for t in tokens))
    return float(min(1.0, total))  # shares that sum to 1 can add up to 1 + 2e-16: it is still a probability


def fuzzing_score(profile: TokenProfile, tokens: Sequence[int], marks: Sequence[bool]) -> float:
    top = set(int(t) for t in profile.ids)
    marked = [int(t) for t, m in zip(tokens, marks, strict=True) if m]
    return float(np.mean([t in top for t in marked])) if marked else 0.0


def score_baseline(
    rec: LatentRecord,
    scorer: str,
    top_k: int = 10,
    seed: int = 0,
    mark_frac: float = 0.3,
    meta: dict | None = None,
    profile: TokenProfile | None = None,
    backend: str = BASELINE_NAME,
) -> list[dict]:
    """Rows like :func:`rsae_utils.autointerp.scorers.score_with_backend`, with backend ``backend`` (another name
    for another profile, e.g. the single-token explanation's)."""
    check_scorer(scorer)
    profile = profile if profile is not None else token_profile(rec, top_k)
    order = scoring_order(rec, scorer, seed)
    if scorer == "detection":
        probs = [detection_score(profile, w.tokens) for w in order]
    else:
        marks = fuzzing_marks(rec, seed, mark_frac)
        probs = [fuzzing_score(profile, w.tokens, marks[w.window]) for w in order]
    return example_rows(rec, order, probs, scorer, backend, meta)


def baseline_row(
    rec: LatentRecord,
    window: Window,
    scorer: str,
    label: int,
    probability: float,
    meta: dict | None = None,
    kind: str | None = None,
    **extra,
) -> dict:
    """One scored row of a token-identity scorer, in the columns of ``scorers.ROW_COLUMNS`` (backend
    ``token-baseline``) plus ``extra``: for scorers whose label is not the window's own (intruder, active token)."""
    return {
        **(meta or {}),
        "latent": rec.latent,
        "scorer": scorer,
        "backend": BASELINE_NAME,
        "window": window.window,
        "kind": window.kind if kind is None else kind,
        "bin": window.bin,
        "label": int(label),
        "probability": probability,
        "unparsable": False,
        **extra,
    }
