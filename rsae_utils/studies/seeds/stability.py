"""Seed stability (Paulo & Belrose 2025): the encoder and decoder matchings of two SAEs, which latents they share,
and the analyses of the paper (fraction shared against threshold, how many seeds share a latent, alignment against
firing frequency or score). The assignment itself lives in :mod:`rsae_utils.sae.matching`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rsae_utils.sae.matching import (
    DEFAULT_DENSE_MAX,
    DEFAULT_THRESHOLD,
    DEFAULT_TOP_M,
    Assignment,
    Directions,
    assign,
    check_pair,
    check_threshold,
)


# --------------------------------------------------------------------------------------------------------------
# Matching two SAEs
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SharedSummary:
    """Counts and fractions (over a's latents) for one matching at one threshold."""

    n_a: int
    n_b: int
    threshold: float
    method: str
    n_shared: int  # matched decoder cos > thr AND matched encoder cos > thr
    frac_shared: float
    n_dec_above: int  # matched decoder cos > thr
    n_enc_above: int  # matched encoder cos > thr
    n_same_partner: int  # both matchings pick the same latent of b
    n_shared_same_partner: int  # shared and same partner
    frac_shared_same_partner: float
    n_maxcos_shared: int  # best (not one-to-one) decoder cos > thr AND best encoder cos > thr
    frac_maxcos_shared: float
    n_maxcos_same_argmax: int  # best decoder and best encoder latent of b coincide
    mean_dec_cos: float
    mean_enc_cos: float
    n_fallback_edges: int
    certified: bool  # both matchings provably optimal (dense, or sparse after a passed pricing check)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MatchResult:
    """Per latent of SAE a: its decoder and encoder partners in SAE b, their cosines and the shared masks."""

    dec: Assignment
    enc: Assignment
    n_b: int
    threshold: float
    shared: np.ndarray  # (n_a,) bool: dec.cos > thr and enc.cos > thr
    same_partner: np.ndarray  # (n_a,) bool: dec.partner == enc.partner (and matched)

    @property
    def n_a(self) -> int:
        return len(self.shared)

    @property
    def dec_partner(self) -> np.ndarray:
        return self.dec.partner

    @property
    def dec_cos(self) -> np.ndarray:
        return self.dec.cos

    @property
    def enc_partner(self) -> np.ndarray:
        return self.enc.partner

    @property
    def enc_cos(self) -> np.ndarray:
        return self.enc.cos

    @property
    def method(self) -> str:
        return self.dec.method

    def shared_at(self, threshold: float) -> np.ndarray:
        """(n_a,) bool: shared at another threshold (the matchings do not depend on it)."""
        t = check_threshold(threshold)
        with np.errstate(invalid="ignore"):  # NaN (unmatched) compares False, which is what we want
            return (self.dec.cos > t) & (self.enc.cos > t)

    def maxcos_shared_at(self, threshold: float) -> np.ndarray:
        """(n_a,) bool: best decoder and best encoder cosine with any latent of b both > threshold."""
        t = check_threshold(threshold)
        return (self.dec.max_cos > t) & (self.enc.max_cos > t)

    def summary(self, threshold: float | None = None) -> SharedSummary:
        """Counts at ``threshold`` (default: the one the result was built with)."""
        t = self.threshold if threshold is None else check_threshold(threshold)
        shared, n = self.shared_at(t), self.n_a
        with np.errstate(invalid="ignore"):
            dec_above, enc_above = int((self.dec.cos > t).sum()), int((self.enc.cos > t).sum())
        maxcos = self.maxcos_shared_at(t)
        return SharedSummary(
            n_a=n,
            n_b=self.n_b,
            threshold=t,
            method=self.method,
            n_shared=int(shared.sum()),
            frac_shared=float(shared.mean()),
            n_dec_above=dec_above,
            n_enc_above=enc_above,
            n_same_partner=int(self.same_partner.sum()),
            n_shared_same_partner=int((shared & self.same_partner).sum()),
            frac_shared_same_partner=float((shared & self.same_partner).mean()),
            n_maxcos_shared=int(maxcos.sum()),
            frac_maxcos_shared=float(maxcos.mean()),
            n_maxcos_same_argmax=int((self.dec.argmax == self.enc.argmax).sum()),
            mean_dec_cos=float(np.nanmean(self.dec.cos)),
            mean_enc_cos=float(np.nanmean(self.enc.cos)),
            n_fallback_edges=self.dec.n_fallback_edges + self.enc.n_fallback_edges,
            certified=self.dec.certified and self.enc.certified,
        )


def match_saes(
    a: Directions,
    b: Directions,
    threshold: float = DEFAULT_THRESHOLD,
    method: str = "auto",
    dense_max: int = DEFAULT_DENSE_MAX,
    top_m: int = DEFAULT_TOP_M,
    block: int = 2048,
    verify: bool = True,
    max_rounds: int = 10,
) -> MatchResult:
    """Hungarian-match a's latents to b's on decoder and on encoder cosines separately; see the module docstring.

    ``method`` "auto" matches densely when the larger SAE has at most ``dense_max`` latents, else on the sparse
    top-``top_m`` candidate graph (exact and ``certified`` after the pricing check unless ``verify`` is off);
    "dense" or "sparse" force one.
    """
    check_pair(a, b)
    t = check_threshold(threshold)
    kw = {
        "method": method,
        "dense_max": dense_max,
        "top_m": top_m,
        "block": block,
        "verify": verify,
        "max_rounds": max_rounds,
    }
    dec, enc = assign(a.dec, b.dec, **kw), assign(a.enc, b.enc, **kw)
    with np.errstate(invalid="ignore"):
        shared = (dec.cos > t) & (enc.cos > t)
    same = (dec.partner == enc.partner) & (dec.partner >= 0)
    return MatchResult(dec=dec, enc=enc, n_b=b.n_latents, threshold=t, shared=shared, same_partner=same)


def match_to_reference(reference: Directions, others: Sequence[Directions], **kwargs: Any) -> list[MatchResult]:
    """``match_saes(reference, other, **kwargs)`` for every other SAE (e.g. seed 0 against seeds 1..N-1)."""
    return [match_saes(reference, o, **kwargs) for o in others]


# --------------------------------------------------------------------------------------------------------------
# Analyses
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdCurve:
    """Fractions of a's latents above each threshold (all (T,) arrays, same order as ``thresholds``)."""

    thresholds: np.ndarray
    shared: np.ndarray  # matched dec AND matched enc cos > thr
    dec: np.ndarray  # matched dec cos > thr
    enc: np.ndarray  # matched enc cos > thr
    shared_same_partner: np.ndarray  # shared and both matchings pick the same partner
    maxcos_shared: np.ndarray  # best (not one-to-one) dec AND enc cos > thr


def shared_fraction_curve(
    result: MatchResult, thresholds: Sequence[float] | np.ndarray | None = None
) -> ThresholdCurve:
    """Shared fraction against threshold (default grid 0, 0.05, ..., 1); the matchings are computed once."""
    grid = np.linspace(0.0, 1.0, 21) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    for t in grid:
        check_threshold(t, "thresholds")
    with np.errstate(invalid="ignore"):
        dec = result.dec.cos[None, :] > grid[:, None]
        enc = result.enc.cos[None, :] > grid[:, None]
    both = dec & enc
    maxcos = (result.dec.max_cos[None, :] > grid[:, None]) & (result.enc.max_cos[None, :] > grid[:, None])
    return ThresholdCurve(
        thresholds=grid,
        shared=both.mean(1),
        dec=dec.mean(1),
        enc=enc.mean(1),
        shared_same_partner=(both & result.same_partner[None, :]).mean(1),
        maxcos_shared=maxcos.mean(1),
    )


def n_seeds_sharing(results: Sequence[MatchResult], threshold: float | None = None) -> np.ndarray:
    """(n_a,) int: for each latent of the reference SAE, how many of the other SAEs share it.

    ``results`` are reference-vs-other matchings (``match_to_reference``); ``threshold`` defaults to each
    result's own.
    """
    if len(results) == 0:
        raise ValueError("results must hold at least one MatchResult (reference against another SAE)")
    n = {r.n_a for r in results}
    if len(n) != 1:
        raise ValueError(f"results must all match the same reference SAE; got reference sizes {sorted(n)}")
    masks = [r.shared if threshold is None else r.shared_at(threshold) for r in results]
    return np.sum(masks, axis=0).astype(np.int64)


def alignment(result: MatchResult) -> np.ndarray:
    """(n_a,) per-latent alignment: min(matched decoder cos, matched encoder cos), NaN where unmatched.

    A latent is shared at threshold t exactly when its alignment exceeds t, so this is the one number to set
    against firing frequency or an interpretability score.
    """
    return np.minimum(result.dec.cos, result.enc.cos)  # NaN propagates: unmatched stays NaN


@dataclass(frozen=True)
class BinnedAlignment:
    """Alignment summarised in bins of a per-latent covariate (firing frequency, auto-interp score, ...)."""

    edges: np.ndarray  # (B+1,)
    count: np.ndarray  # (B,) latents per bin
    mean_alignment: np.ndarray  # (B,) NaN for empty bins
    frac_shared: np.ndarray  # (B,) fraction with alignment > threshold; NaN for empty bins
    threshold: float


def alignment_by_bins(
    align: np.ndarray, covariate: np.ndarray, edges: Sequence[float] | np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> BinnedAlignment:
    """Mean alignment and shared fraction per bin of ``covariate`` (bins [e_i, e_{i+1}), the last one closed).

    Latents with NaN alignment or covariate, or a covariate outside the edges, are left out.
    """
    t = check_threshold(threshold)
    align, cov, e = np.asarray(align, float), np.asarray(covariate, float), np.asarray(edges, float)
    if align.shape != cov.shape or align.ndim != 1:
        raise ValueError(f"align and covariate must be 1-D of the same length; got {align.shape} and {cov.shape}")
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("edges must be a strictly increasing 1-D sequence of at least 2 values")
    ok = np.isfinite(align) & np.isfinite(cov) & (cov >= e[0]) & (cov <= e[-1])
    b = np.clip(np.searchsorted(e, cov[ok], side="right") - 1, 0, len(e) - 2)
    count = np.bincount(b, minlength=len(e) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(b, weights=align[ok], minlength=len(e) - 1) / count
        frac = np.bincount(b, weights=(align[ok] > t).astype(float), minlength=len(e) - 1) / count
    return BinnedAlignment(edges=e, count=count, mean_alignment=mean, frac_shared=frac, threshold=t)
