"""The verdict rules of the claims table, and the bootstrap that gives each number its interval.

Every rule takes an estimate's interval ``[lo, hi]`` (and a margin or threshold, a parameter of notebook 10) and
returns a :class:`Verdict`: one of ``reproduced``, ``not reproduced``, ``not decidable at this scale``, with a
qualifier where one says more (``negligible``, ``opposite``, ``out of reach``, ``by construction``) and the reason in
words and numbers. No verdict is written by hand.

* :func:`similar` -- a claim of *no difference* ("random scores about as well as trained"). Reproduced when the whole
  interval of the difference lies within ``ref +- margin`` (an equivalence test: a wide interval that merely contains
  0 does not count, or every underpowered run would reproduce every "no difference" claim); not reproduced when the
  whole interval lies outside it; otherwise the interval is too wide to tell. ``near chance`` is ``similar`` with
  ``ref = 0.5``.
* :func:`below` / :func:`above` -- a claim of a *direction* ("random variants have lower entropy"), with ``margin``
  as its minimum effect: reproduced only when the whole interval lies beyond ``ref -+ margin`` on the claimed side
  (an interval that merely excludes ``ref`` is a direction without a size); not reproduced when it excludes an effect
  of ``margin`` on the claimed side, qualified *negligible* when it lies within ``ref +- margin`` and *opposite* when
  it lies on the other side of ``ref``; otherwise (it straddles ``ref -+ margin``) not decidable.
* :func:`at_least` / :func:`at_most` -- a claim about a level ("mostly single-token": a share >= 0.5). Reproduced
  when the interval lies on the claimed side of the threshold, not reproduced when it lies on the other side.
* :func:`in_band` -- a claim of a number ("~30-40% shared"): reproduced when the interval lies inside the band, not
  reproduced when it misses it entirely.
* Reachability: every rule takes the :class:`Bounds` the measure can reach in this run (a difference of shares
  cannot fall below minus the smaller share; a one-token explanation cannot lose more than its reference's lead over
  chance). When one of the rule's outcomes lies outside them, the number cannot decide the claim: *not decidable*,
  qualified *out of reach*, saying which outcome is unreachable and what the number alone would give.
* :func:`by_construction` -- a measure that cannot fail, because its scorer or its variant builds the result in (a
  token-identity scorer on a model whose embeddings are fresh noise): *not decidable*, qualified *by construction*,
  never counted as reproduced.
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

NEGLIGIBLE = "negligible"  # not reproduced: the interval lies within the minimum effect either side
OPPOSITE = "opposite"  # not reproduced: the interval lies on the other side of the reference
OUT_OF_REACH = "out of reach"  # not decidable: an outcome of the rule lies outside what the measure can reach here
BY_CONSTRUCTION = "by construction"  # not decidable: the scorer or the variant builds the result in
TRAINING_BUDGET = "training budget"  # not decidable: the difference changes sign across the study's budgets
# Each qualifier goes with one verdict only ("" with any): a result built in can never read "reproduced".
QUALIFIERS = {
    "": VERDICTS,
    NEGLIGIBLE: (NOT_REPRODUCED,),
    OPPOSITE: (NOT_REPRODUCED,),
    OUT_OF_REACH: (NOT_DECIDABLE,),
    BY_CONSTRUCTION: (NOT_DECIDABLE,),
    TRAINING_BUDGET: (NOT_DECIDABLE,),
}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    qualifier: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")
        if self.qualifier not in QUALIFIERS:
            raise ValueError(f"qualifier must be one of {tuple(QUALIFIERS)}; got {self.qualifier!r}")
        if self.verdict not in QUALIFIERS[self.qualifier]:
            raise ValueError(
                f"qualifier {self.qualifier!r} goes with {QUALIFIERS[self.qualifier]}, not {self.verdict!r}"
            )

    @property
    def label(self) -> str:
        """The verdict with its qualifier, as the table reads: "not reproduced (negligible)"."""
        return f"{self.verdict} ({self.qualifier})" if self.qualifier else self.verdict


@dataclass(frozen=True)
class Bounds:
    """The values a claim's measure can take in this run (``floor`` to ``ceiling``), and ``why`` in words."""

    floor: float = -math.inf
    ceiling: float = math.inf
    why: str = ""

    def __post_init__(self) -> None:
        if not self.floor <= self.ceiling:
            raise ValueError(f"Bounds: floor ({self.floor}) must be <= ceiling ({self.ceiling})")


def _f(x: float) -> str:
    return f"{x:.3g}"


def _iv(lo: float, hi: float) -> str:
    return f"[{_f(lo)}, {_f(hi)}]"


def _nan(*xs: float) -> bool:
    return any(x is None or not math.isfinite(float(x)) for x in xs)


def _no_interval(what: str) -> Verdict:
    return Verdict(NOT_DECIDABLE, f"no interval for the {what}")


def _reach(v: Verdict, bounds: Bounds | None, can_pass: bool, can_fail: bool) -> Verdict:
    """``v`` when the measure can reach both the rule's outcomes, else not decidable (out of reach), saying which
    outcome cannot happen: a rule that can only say one thing says nothing."""
    if bounds is None or (can_pass and can_fail):
        return v
    lost = " or ".join(repr(x) for x, ok in ((REPRODUCED, can_pass), (NOT_REPRODUCED, can_fail)) if not ok)
    return Verdict(
        NOT_DECIDABLE,
        f"{bounds.why or 'the measure is bounded'}: it can only lie in {_iv(bounds.floor, bounds.ceiling)} here, "
        f"so {lost} is out of reach; the number alone would give {v.label!r}: {v.reason}",
        OUT_OF_REACH,
    )


def by_construction(why: str, verdict: Verdict) -> Verdict:
    """A measure that cannot fail by construction of its scorer or variant (``why``): not decidable, whatever it
    says, with what the number alone would give."""
    return Verdict(
        NOT_DECIDABLE,
        f"by construction: {why}; the number alone would give {verdict.label!r}: {verdict.reason}",
        BY_CONSTRUCTION,
    )


def similar(
    lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference", bounds: Bounds | None = None
) -> Verdict:
    """No difference from ``ref``: the interval inside ``ref +- margin`` (equivalence), or entirely outside it."""
    band = f"{_f(ref)} +- {_f(margin)}"
    if _nan(lo, hi):
        return _no_interval(what)
    if lo >= ref - margin and hi <= ref + margin:
        v = Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies within {band}")
    elif lo > ref + margin or hi < ref - margin:
        v = Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies outside {band}")
    else:
        v = Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, is too wide to tell: it crosses {band}")
    if bounds is None:
        return v
    b = bounds
    return _reach(
        v, b, b.floor <= ref + margin and b.ceiling >= ref - margin, b.floor < ref - margin or b.ceiling > ref + margin
    )


def near(
    lo: float, hi: float, target: float, margin: float, what: str = "value", bounds: Bounds | None = None
) -> Verdict:
    """``similar`` to a level (``near chance``: target 0.5)."""
    return similar(lo, hi, margin, ref=target, what=what, bounds=bounds)


def _direction(lo: float, hi: float, margin: float, ref: float, what: str, up: bool, bounds: Bounds | None) -> Verdict:
    """:func:`above` (``up``) or :func:`below`, computed in the frame where the claimed side is up."""
    if _nan(lo, hi):
        return _no_interval(what)
    s = 1.0 if up else -1.0
    a, b, r = min(s * lo, s * hi), max(s * lo, s * hi), s * ref
    change, side, other = ("an increase", "above", "below") if up else ("a decrease", "below", "above")
    iv, target = f"the interval of the {what}, {_iv(lo, hi)},", _f(ref + s * margin)
    if a >= r + margin:
        v = Verdict(
            REPRODUCED, f"{iv} lies at or {side} {target}: {change} of at least the minimum effect {_f(margin)}"
        )
    elif b < r + margin and a >= r - margin:
        v = Verdict(
            NOT_REPRODUCED,
            f"{iv} lies within {_f(ref)} +- {_f(margin)}: smaller than the minimum effect {_f(margin)}",
            NEGLIGIBLE,
        )
    elif b < r:
        v = Verdict(NOT_REPRODUCED, f"{iv} lies {other} {_f(ref)}: the opposite direction", OPPOSITE)
    elif b < r + margin:
        v = Verdict(NOT_REPRODUCED, f"{iv} excludes {change} of {_f(margin)} or more {side} {_f(ref)}")
    else:
        v = Verdict(
            NOT_DECIDABLE,
            f"{iv} reaches {target} but does not lie beyond it: {change} of the minimum effect {_f(margin)} is "
            f"neither shown nor excluded",
        )
    if bounds is None:
        return v
    floor, ceiling = sorted((s * bounds.floor, s * bounds.ceiling))
    return _reach(v, bounds, ceiling >= r + margin, floor < r + margin)


def below(
    lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference", bounds: Bounds | None = None
) -> Verdict:
    """Below ``ref`` by at least ``margin`` (the minimum effect): reproduced when ``hi <= ref - margin``; not
    reproduced when ``lo > ref - margin`` (negligible: inside ``ref +- margin``; opposite: above ``ref``);
    otherwise not decidable. Out of reach when ``bounds`` rule out either outcome."""
    return _direction(lo, hi, margin, ref, what, False, bounds)


def above(
    lo: float, hi: float, margin: float, ref: float = 0.0, what: str = "difference", bounds: Bounds | None = None
) -> Verdict:
    """Above ``ref`` by at least ``margin``: the mirror image of :func:`below`."""
    return _direction(lo, hi, margin, ref, what, True, bounds)


def at_least(lo: float, hi: float, threshold: float, what: str = "value", bounds: Bounds | None = None) -> Verdict:
    if _nan(lo, hi):
        return _no_interval(what)
    if lo >= threshold:
        v = Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies at or above {_f(threshold)}")
    elif hi < threshold:
        v = Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies below {_f(threshold)}")
    else:
        v = Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(threshold)}")
    if bounds is None:
        return v
    return _reach(v, bounds, bounds.ceiling >= threshold, bounds.floor < threshold)


def at_most(lo: float, hi: float, threshold: float, what: str = "value", bounds: Bounds | None = None) -> Verdict:
    if _nan(lo, hi):
        return _no_interval(what)
    if hi <= threshold:
        v = Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies at or below {_f(threshold)}")
    elif lo > threshold:
        v = Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies above {_f(threshold)}")
    else:
        v = Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, contains {_f(threshold)}")
    if bounds is None:
        return v
    return _reach(v, bounds, bounds.floor <= threshold, bounds.ceiling > threshold)


def in_band(
    lo: float, hi: float, band_lo: float, band_hi: float, what: str = "value", bounds: Bounds | None = None
) -> Verdict:
    band = _iv(band_lo, band_hi)
    if _nan(lo, hi):
        return _no_interval(what)
    if band_lo <= lo and hi <= band_hi:
        v = Verdict(REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, lies inside {band}")
    elif hi < band_lo or lo > band_hi:
        v = Verdict(NOT_REPRODUCED, f"the interval of the {what}, {_iv(lo, hi)}, misses {band}")
    else:
        v = Verdict(NOT_DECIDABLE, f"the interval of the {what}, {_iv(lo, hi)}, overlaps {band} only in part")
    if bounds is None:
        return v
    b = bounds
    return _reach(v, b, b.floor <= band_hi and b.ceiling >= band_lo, b.floor < band_lo or b.ceiling > band_hi)


def scale_gate(ok: bool, why: str, verdict: Verdict) -> Verdict:
    """``verdict`` when the run is in the claim's regime (``ok``), else not decidable, saying ``why`` not."""
    if ok:
        return verdict
    return Verdict(NOT_DECIDABLE, f"{why}; the number alone would give {verdict.label!r}: {verdict.reason}")


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


def within_draw(kind: str) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """The second stage of :func:`two_stage_bootstrap` for rows ``(value, spread)``, centred on the value so that
    the interval stays around the estimate: ``"sd"`` draws value + N(0, spread) (spread: the sd of the value over
    resampled examples); ``"share"`` reads spread as the share p of example resamples in which a 0/1 flag held and
    draws value + N(0, p (1 - p)), the flag's variance over those resamples. A NaN spread adds nothing."""
    if kind not in ("sd", "share"):
        raise ValueError(f"kind must be 'sd' or 'share'; got {kind!r}")

    def draw(rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
        spread = np.nan_to_num(rows[:, 1])
        sd = spread if kind == "sd" else np.sqrt(np.clip(spread * (1.0 - spread), 0.0, None))
        return rows[:, 0] + rng.standard_normal(len(rows)) * sd

    return draw


def two_stage_bootstrap(
    groups: Sequence[np.ndarray],
    kind: str,
    stat: Callable[[Sequence[np.ndarray]], float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """:func:`bootstrap` over the rows (latents) of each group, each drawn row then redrawn over its own examples
    (:func:`within_draw` ``kind``): a two-stage bootstrap, whose interval covers the choice of latents *and* the
    windows each latent's value was read from. ``groups``: arrays of rows ``(value, spread)``; the estimate is
    ``stat`` of the values."""
    groups = [np.asarray(g, dtype=float).reshape(-1, 2) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        return math.nan, math.nan, math.nan
    draw = within_draw(kind)
    est = float(stat([g[:, 0] for g in groups]))
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        reps[b] = stat([draw(rng, g[rng.integers(0, len(g), len(g))]) for g in groups])
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return est, math.nan, math.nan
    q = (1.0 - level) / 2
    return est, float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))


def _pair_mean(vals: dict[tuple[int, int], float], draw: np.ndarray) -> float:
    """Mean of ``vals`` over the pairs of positions in ``draw`` holding two different seeds (a seed drawn twice is
    not compared with itself: no SAE pair has a seed with itself)."""
    a, b = np.triu_indices(len(draw), 1)
    keep = draw[a] != draw[b]
    if not keep.any():
        return math.nan
    lo, hi = np.minimum(draw[a][keep], draw[b][keep]), np.maximum(draw[a][keep], draw[b][keep])
    return float(np.mean([vals[(int(x), int(y))] for x, y in zip(lo, hi, strict=True)]))


def seed_pair_bootstrap(
    groups: Sequence[tuple[Sequence[int], Sequence[int], Sequence[float]]],
    stat: Callable[[Sequence[float]], float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` of ``stat`` of per-group means of a pairwise measure (seed_a, seed_b, value): every
    group holds one value per pair of its SAE seeds. A bootstrap over *seeds*, not over pairs: each draw resamples a
    group's seeds with replacement and averages the pairs among the distinct seeds drawn, so one odd seed moves every
    pair it is in, as it does in the data (the overlapping pairs 0-1, 0-2, 1-2 are not independent). Groups are
    resampled independently. Draws with a single distinct seed in some group are dropped."""
    tables = []
    for a, b, v in groups:
        a, b, v = np.asarray(a, int), np.asarray(b, int), np.asarray(v, float)
        if not len(v):
            return math.nan, math.nan, math.nan
        vals = {(int(min(x, y)), int(max(x, y))): float(z) for x, y, z in zip(a, b, v, strict=True)}
        seeds = np.unique(np.r_[a, b])
        if len(vals) != len(seeds) * (len(seeds) - 1) // 2:
            raise ValueError(
                f"a group has {len(vals)} seed pairs; its {len(seeds)} seeds make {len(seeds) * (len(seeds) - 1) // 2}"
            )
        tables.append((vals, seeds))
    est = float(stat([float(np.mean(list(vals.values()))) for vals, _ in tables]))
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        reps[i] = stat([_pair_mean(vals, rng.choice(seeds, len(seeds))) for vals, seeds in tables])
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return est, math.nan, math.nan
    q = (1.0 - level) / 2
    return est, float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))


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
