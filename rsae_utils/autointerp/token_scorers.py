"""Scorers that need no strong LLM, beside detection and fuzzing: how far token identity alone gets.

Every scorer here judges windows with the token-identity profile of :mod:`rsae_utils.autointerp.baseline` (the
latent's top tokens by activation mass over its explainer windows) and writes rows of the same shape as the
baseline and the LLM scorers (latent, scorer, backend, window, kind, bin, label, probability, unparsable, plus a
few scorer-specific columns), so :func:`rsae_utils.autointerp.stats.auroc` and ``bootstrap_roc`` apply unchanged:

* **intruder** (:func:`intruder_trials`, :func:`score_intruder`, :func:`intruder_summary`): ``n_real`` activating
  windows of the latent plus one activating window of another latent; every window is scored by how well its
  tokens match the latent's profile, and the intruder should score lowest. Reports accuracy (ties shared) and the
  AUROC of real (label 1) against intruder (label 0) windows.
* **hard negatives** (:func:`nearest_latents`, :func:`hard_negative_windows`, :func:`with_negatives`): negatives
  drawn from the windows of the latents whose decoder directions are nearest, where the target does not fire.
  Such windows tend to hold the same tokens, so "fires on token X" is tested against windows that contain X too;
  the random negatives of the paper rarely do, which flatters token-level explanations.
* **active-token fuzzing** (:func:`active_token_rows`, :func:`marking_precision`): the profile marks tokens
  itself (a token is marked when its id is among the profile's top tokens); precision = share of the marked
  tokens that are truly active, recall = share of the active tokens that got marked; one row per token.
* **single-token explainer** (:func:`single_token_explanation`, :func:`score_single_token`): the trivial
  explanation "fires on these n tokens" (top-n by activation mass), as text (usable by the LLM scorers too) and as
  an id set, scored for detection and fuzzing by token identity on exactly the baseline's windows and marks.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rsae_utils.autointerp.baseline import (
    TokenProfile,
    baseline_row,
    detection_score,
    explainer_token_mass,
    score_baseline,
    token_profile,
)
from rsae_utils.autointerp.examples import LatentRecord, SparseActs, Window
from rsae_utils.autointerp.prompts import Decode, active_mask
from rsae_utils.autointerp.stats import auroc

INTRUDER = "intruder"
ACTIVE_TOKEN = "active-token"
SINGLE_TOKEN_NAME = "single-token"


# --------------------------------------------------------------------------------------------------------------
# Intruder
# --------------------------------------------------------------------------------------------------------------
@dataclass
class IntruderTrial:
    """One intruder question: ``windows`` holds the real windows and the intruder, in shuffled order."""

    latent: int
    trial: int
    windows: list[Window]
    intruder: int  # index of the intruder in ``windows``
    source_latent: int  # the latent whose activating window the intruder is (its acts are that latent's)


def _activating(rec: LatentRecord) -> list[Window]:
    return list(rec.explain) + list(rec.positives)


def intruder_trials(
    rec: LatentRecord,
    others: Sequence[LatentRecord],
    n_trials: int = 10,
    n_real: int = 4,
    exclude: Iterable[int] | None = None,
    seed: int = 0,
) -> list[IntruderTrial]:
    """``n_trials`` intruder questions for ``rec`` (deterministic given ``seed``).

    Real windows come from ``rec.positives`` (not the explainer windows the profile is built from, so the test is
    held out); the intruder is an activating window of a randomly chosen other record. ``exclude``: window ids
    where ``rec``'s latent fires (e.g. ``sp.window_maxima(latent)[0]``); without it only ``rec``'s own sampled
    windows are excluded, and an intruder may happen to activate the latent, making the question ill-posed.
    Trials for which no intruder candidate is left are dropped, so fewer than ``n_trials`` may come back.
    """
    if n_real < 1:
        raise ValueError("n_real must be >= 1")
    banned = {w.window for w in _activating(rec)} | {int(w) for w in (exclude if exclude is not None else ())}
    pools = [
        (o.latent, [w for w in _activating(o) if w.window not in banned]) for o in others if o.latent != rec.latent
    ]
    pools = [(lat, ws) for lat, ws in pools if ws]
    real_pool = list(rec.positives)
    if not pools or not real_pool:
        return []
    rng = np.random.default_rng([seed, rec.latent, 7])
    trials = []
    for t in range(n_trials):
        real = [real_pool[i] for i in rng.choice(len(real_pool), size=min(n_real, len(real_pool)), replace=False)]
        src, cands = pools[int(rng.integers(len(pools)))]
        intruder = dataclasses.replace(cands[int(rng.integers(len(cands)))], kind=INTRUDER, bin=-1)
        windows = real + [intruder]
        order = rng.permutation(len(windows))
        windows = [windows[i] for i in order]
        trials.append(
            IntruderTrial(
                latent=rec.latent,
                trial=t,
                windows=windows,
                intruder=int(np.flatnonzero(order == len(real))[0]),
                source_latent=int(src),
            )
        )
    return trials


def score_intruder(
    rec: LatentRecord,
    trials: Sequence[IntruderTrial],
    profile: TokenProfile | None = None,
    top_k: int = 10,
    meta: dict | None = None,
) -> list[dict]:
    """One row per window of every trial; ``probability`` = the window's token match to ``rec``'s profile
    (summed profile share of the ids it contains, as the baseline's detection score), label 0 for the intruder."""
    profile = profile if profile is not None else token_profile(rec, top_k)
    rows = []
    for tr in trials:
        for i, w in enumerate(tr.windows):
            is_intruder = i == tr.intruder
            rows.append(
                baseline_row(
                    rec,
                    w,
                    INTRUDER,
                    0 if is_intruder else 1,
                    detection_score(profile, w.tokens),
                    meta,
                    kind=INTRUDER if is_intruder else "positive",
                    trial=tr.trial,
                    source_latent=tr.source_latent if is_intruder else rec.latent,
                )
            )
    return rows


def intruder_summary(rows: Sequence[dict]) -> dict:
    """Accuracy and AUROC of intruder rows (all latents pooled; filter first for one latent).

    A trial is answered by picking the lowest-scoring window; when the intruder ties with others for the lowest
    score the trial counts 1 / (number tied), the expected accuracy of breaking ties at random. Chance level is
    1 / (n_real + 1).
    """
    trials: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        trials[(r["latent"], r["trial"])].append(r)
    hits = []
    for group in trials.values():
        s = np.array([r["probability"] for r in group], dtype=float)
        intr = [i for i, r in enumerate(group) if r["label"] == 0]
        if len(intr) != 1:
            raise ValueError("every intruder trial must hold exactly one intruder row")
        lowest = s.min()
        hits.append(1.0 / np.sum(s == lowest) if s[intr[0]] == lowest else 0.0)
    return {
        "accuracy": float(np.mean(hits)) if hits else float("nan"),
        "auroc": auroc([r["label"] for r in rows], [r["probability"] for r in rows]),
        "n_trials": len(hits),
    }


# --------------------------------------------------------------------------------------------------------------
# Hard negatives
# --------------------------------------------------------------------------------------------------------------
def nearest_latents(
    W_dec, latents: Sequence[int] | None = None, k: int = 5, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines), each (n, k): the ``k`` latents whose decoder rows are nearest in cosine to each of
    ``latents`` (all by default), nearest first, the latent itself left out.

    ``W_dec`` is (n_latents, d_in), sae-lens's layout (one decoder direction per row), numpy or torch. Computed
    in blocks of ``block`` query rows, so only a (block, n_latents) similarity matrix is held at once. Rows of
    zero norm get cosine 0 with everything.
    """
    W = torch.as_tensor(W_dec).detach().float()
    n = W.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..{n - 1}")
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    query = torch.arange(n) if latents is None else torch.as_tensor(np.asarray(latents, dtype=np.int64))
    ids, sims = [], []
    for lo in range(0, query.numel(), block):
        q = query[lo : lo + block]
        cos = unit[q.to(unit.device)] @ unit.T
        cos[torch.arange(q.numel()), q.to(unit.device)] = -torch.inf  # never one's own neighbour
        val, idx = torch.topk(cos, k, dim=1)
        ids.append(idx.cpu().numpy())
        sims.append(val.cpu().numpy())
    return np.concatenate(ids), np.concatenate(sims).astype(np.float64)


def hard_negative_windows(
    sp: SparseActs, latent: int, neighbours: Sequence[int], n_negatives: int = 100, seed: int = 0
) -> list[Window]:
    """Up to ``n_negatives`` windows where some neighbour latent fires and ``latent`` never does, drawn at random
    (seeded), as ``Window`` objects of ``latent`` (all-zero acts, kind ``negative``), sorted by window id.

    Fewer come back when fewer such windows exist; the caller decides whether to top them up with random ones.
    """
    target = set(sp.window_maxima(int(latent))[0].tolist())
    cands = set()
    for nb in neighbours:
        if int(nb) != int(latent):
            cands.update(sp.window_maxima(int(nb))[0].tolist())
    pool = np.array(sorted(cands - target), dtype=np.int64)
    rng = np.random.default_rng([seed, int(latent), 11])
    pick = rng.choice(pool, size=min(n_negatives, pool.size), replace=False) if pool.size else pool
    return [sp.window(int(latent), int(w), "negative") for w in np.sort(pick)]


def with_negatives(rec: LatentRecord, negatives: Sequence[Window]) -> LatentRecord:
    """A copy of ``rec`` whose negatives are ``negatives``: score it with any scorer (LLM or token baseline)."""
    return dataclasses.replace(rec, negatives=list(negatives))


def hard_negative_record(
    sp: SparseActs, rec: LatentRecord, W_dec, k: int = 5, n_negatives: int | None = None, seed: int = 0
) -> LatentRecord:
    """``rec`` with hard negatives from its ``k`` nearest decoder neighbours; as many as it had random ones by
    default."""
    nbrs, _ = nearest_latents(W_dec, [rec.latent], k=k)
    n = len(rec.negatives) if n_negatives is None else n_negatives
    return with_negatives(rec, hard_negative_windows(sp, rec.latent, nbrs[0].tolist(), n, seed))


# --------------------------------------------------------------------------------------------------------------
# Active-token fuzzing: the profile marks tokens, judged against the true activations
# --------------------------------------------------------------------------------------------------------------
def active_token_rows(
    rec: LatentRecord,
    profile: TokenProfile | None = None,
    top_k: int = 10,
    mark_frac: float = 0.3,
    windows: Sequence[Window] | None = None,
    meta: dict | None = None,
) -> list[dict]:
    """One row per token of ``windows`` (the scoring windows by default): label = the token is active (the
    fuzzing marks' rule: > 0 and >= ``mark_frac`` x the window maximum), probability = its id's share in the
    profile (0 when the id is not among the top tokens). AUROC over these rows is token-level detection."""
    profile = profile if profile is not None else token_profile(rec, top_k)
    share = profile.share_of()
    rows = []
    for w in rec.scoring if windows is None else windows:
        active = active_mask(w.acts, mark_frac)
        for pos, (tok, a) in enumerate(zip(w.tokens, active, strict=True)):
            rows.append(baseline_row(rec, w, ACTIVE_TOKEN, int(a), share.get(int(tok), 0.0), meta, position=pos))
    return rows


def marking_precision(rows: Sequence[dict], threshold: float = 0.0) -> dict:
    """Precision, recall and F1 of marking every token whose probability exceeds ``threshold`` (by default: every
    token whose id is in the profile). Precision is NaN when nothing is marked, recall when nothing is active."""
    y = np.array([r["label"] for r in rows], dtype=bool)
    marked = np.array([r["probability"] > threshold for r in rows], dtype=bool)
    tp = int((y & marked).sum())
    precision = tp / marked.sum() if marked.any() else float("nan")
    recall = tp / y.sum() if y.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_marked": int(marked.sum()),
        "n_active": int(y.sum()),
        "auroc": auroc(y, [r["probability"] for r in rows]),
    }


# --------------------------------------------------------------------------------------------------------------
# Single-token explainer
# --------------------------------------------------------------------------------------------------------------
@dataclass
class SingleTokenExplanation:
    """The explanation "fires on these tokens": the latent's top-n token ids by explainer activation mass."""

    latent: int
    ids: tuple[int, ...]
    text: str
    mass_share: float  # share of the explainer activation mass these ids hold (1 for a pure token latent)

    @property
    def profile(self) -> TokenProfile:
        """As a baseline profile with equal shares, so detection = share of the ids present in a window."""
        n = len(self.ids)
        return TokenProfile(ids=np.asarray(self.ids, dtype=np.int64), share=np.full(n, 1.0 / n) if n else np.zeros(0))


def single_token_explanation(rec: LatentRecord, n: int = 1, decode: Decode | None = None) -> SingleTokenExplanation:
    """Top-``n`` tokens of ``rec`` by activation mass over its explainer windows, with a readable text."""
    ids, mass = explainer_token_mass(rec)
    top = tuple(int(t) for t in ids[:n])
    share = float(mass[:n].sum() / mass.sum()) if mass.sum() > 0 else float("nan")
    if not top:
        text = "(no active tokens)"
    else:
        names = [repr(s) for s in decode(list(top))] if decode else [f"token {t}" for t in top]
        text = f"fires on {names[0]}" if len(names) == 1 else "fires on one of " + ", ".join(names)
    return SingleTokenExplanation(latent=rec.latent, ids=top, text=text, mass_share=share)


def score_single_token(
    rec: LatentRecord,
    scorer: str,
    n: int = 1,
    seed: int = 0,
    mark_frac: float = 0.3,
    meta: dict | None = None,
    explanation: SingleTokenExplanation | None = None,
) -> list[dict]:
    """Detection or fuzzing rows for the single-token explanation, backend ``single-token``: the same windows,
    order and fuzzing marks as :func:`rsae_utils.autointerp.baseline.score_baseline` (it does the scoring)."""
    expl = explanation if explanation is not None else single_token_explanation(rec, n)
    return score_baseline(
        rec, scorer, seed=seed, mark_frac=mark_frac, meta=meta, profile=expl.profile, backend=SINGLE_TOKEN_NAME
    )
