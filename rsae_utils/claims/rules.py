"""The verdict rules of the claims table, and the bootstrap that gives each number its interval.

Every rule takes an estimate's interval ``[lo, hi]`` (and a margin or threshold, a parameter of notebook 09) and
returns a :class:`Verdict`: one of ``reproduced``, ``not reproduced``, ``not decidable at this scale``, with the
reason in words and numbers. No verdict is written by hand.

* :func:`similar` -- a claim of *no difference* ("random scores about as well as trained"). Reproduced when the whole
  interval of the difference lies within ``ref +- margin`` (an equivalence test: a wide interval that merely contains
  0 does not count, or every underpowered run would reproduce every "no difference" claim); not reproduced when the
  whole interval lies outside it; otherwise the interval is too wide to tell. ``near chance`` is ``similar`` with
  ``ref = 0.5``.
* :func:`below` / :func:`above` -- a claim of a *direction* ("random variants have lower entropy"). Reproduced when
  the interval excludes ``ref`` on the claimed side; not reproduced when it excludes any change of ``margin`` or more
  in the claimed direction (no effect, or the opposite one); otherwise not decidable.
* :func:`at_least` / :func:`at_most` -- a claim about a level ("mostly single-token": a share >= 0.5). Reproduced
  when the interval lies on the claimed side of the threshold, not reproduced when it lies on the other side.
* :func:`in_band` -- a claim of a number ("~30-40% shared"): reproduced when the interval lies inside the band, not
  reproduced when it misses it entirely.
* :func:`scale_gate` -- a precondition: when the run is outside the regime the claim is about (a scorer at chance on
  the trained model, SAEs whose latents are mostly dead), the verdict is *not decidable at this scale*, whatever the
  number says. Boundaries are inclusive on the reproduced side throughout; an interval with a NaN end is not
  decidable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_DECIDABLE = "not decidable at this scale"
NOT_RUN = "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_DECIDABLE, NOT_RUN)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def _f(x: float) -> str:
    return f"{x:.3g}"


def _iv(lo: float, hi: float) -> str:
    return f"[{_f(lo)}, {_f(hi)}]"


def _nan(*xs: float) -> bool:
    return any(x is None or not math.isfinite(float(x)) for x in xs)


def similar(lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference") -> Verdict:
    """No difference from ``ref``: the interval inside ``ref +- margin`` (equivalence), or entirely outside it."""
    band = f"{_f(ref)} +- {_f(margin)}"
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if lo >= ref - margin and hi <= ref + margin:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies within {band}")
    if lo > ref + margin or hi < ref - margin:
        return Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies outside {band}")
    return Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, is too wide to tell: it crosses {band}")


def near(lo: float, hi: float, target: float, margin: float, what: str = "value") -> Verdict:
    """``similar`` to a level (``near chance``: target 0.5)."""
    return similar(lo, hi, margin, ref=target, what=what)


def below(lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference") -> Verdict:
    """Below ``ref``: reproduced when ``hi < ref``; not reproduced when ``lo > ref - margin`` (no decrease of
    ``margin`` or more is compatible with the data); otherwise not decidable."""
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if hi < ref:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies below {_f(ref)}")
    if lo > ref - margin:
        return Verdict(
            NOT_REPRODUCED,
            f"the interval of the {what}, {_iv(lo, hi)}, excludes a decrease of {_f(margin)} or more below {_f(ref)}",
        )
    return Verdict(
        NOT_DECIDABLE,
        f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(ref)} and decreases beyond the margin {_f(margin)}",
    )


def above(lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference") -> Verdict:
    """Above ``ref``: the mirror image of :func:`below`."""
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if lo > ref:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies above {_f(ref)}")
    if hi < ref + margin:
        return Verdict(
            NOT_REPRODUCED,
            f"the interval of the {what}, {_iv(lo, hi)}, excludes an increase of {_f(margin)} or more above {_f(ref)}",
        )
    return Verdict(
        NOT_DECIDABLE,
        f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(ref)} and increases beyond the margin {_f(margin)}",
    )


def at_least(lo: float, hi: float, threshold: float, what: str = "value") -> Verdict:
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if lo >= threshold:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies at or above {_f(threshold)}")
    if hi < threshold:
        return Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies below {_f(threshold)}")
    return Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(threshold)}")


def at_most(lo: float, hi: float, threshold: float, what: str = "value") -> Verdict:
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if hi <= threshold:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies at or below {_f(threshold)}")
    if lo > threshold:
        return Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies above {_f(threshold)}")
    return Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(threshold)}")


def in_band(lo: float, hi: float, band_lo: float, band_hi: float, what: str = "value") -> Verdict:
    band = _iv(band_lo, band_hi)
    if _nan(lo, hi):
        return Verdict(NOT_DECIDABLE, f"no interval for the {what}")
    if band_lo <= lo and hi <= band_hi:
        return Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies inside {band}")
    if hi < band_lo or lo > band_hi:
        return Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, misses {band}")
    return Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, overlaps {band} only in part")


def scale_gate(ok: bool, why: str, verdict: Verdict) -> Verdict:
    """``verdict`` when the run is in the claim's regime (``ok``), else not decidable, saying ``why`` not."""
    if ok:
        return verdict
    return Verdict(NOT_DECIDABLE, f"{why}; the number alone would give {verdict.verdict!r}: {verdict.reason}")


# --------------------------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------------------------
def bootstrap(
    groups: Sequence[np.ndarray],
    stat: Callable[[Sequence[np.ndarray]], float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: ``stat`` of ``groups`` and its percentile interval, each group resampled (rows, with
    replacement) independently of the others: a stratified bootstrap. A group of one row keeps its value; an empty
    group gives NaN throughout."""
    groups = [np.asarray(g) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        return math.nan, math.nan, math.nan
    est = float(stat(groups))
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        reps[b] = stat([g[rng.integers(0, len(g), len(g))] for g in groups])
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return est, math.nan, math.nan
    a = (1.0 - level) / 2
    return est, float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def z_value(level: float) -> float:
    """The two-sided normal quantile of ``level`` (1.96 at 0.95)."""
    return float(norm.ppf(0.5 + level / 2))


def normal_ci(est: float, sd: float, level: float = 0.95) -> tuple[float, float, float]:
    z = z_value(level)
    return float(est), float(est - z * sd), float(est + z * sd)


def sd_from_ci(lo: float, hi: float, level: float = 0.95) -> float:
    """The normal sd an interval ``[lo, hi]`` at ``level`` implies (to combine intervals of several cells)."""
    return (hi - lo) / (2 * z_value(level))


def mean_of_independent(est: Sequence[float], sd: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """The mean of independent estimates and its normal interval: sd = sqrt(sum sd^2) / n."""
    est, sd = np.asarray(est, float), np.asarray(sd, float)
    if not len(est):
        return math.nan, math.nan, math.nan
    return normal_ci(float(est.mean()), float(np.sqrt((sd**2).sum()) / len(est)), level)
