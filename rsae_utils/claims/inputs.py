"""What the claim readers share: the options (notebook 10's margins), the figures folder they read, the result of
one claim, and the reductions several readers use (random variants, paired cells, combined intervals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsae_utils.claims.rules import (
    Verdict,
    bootstrap,
    mean_of_independent,
    sd_from_ci,
    seed_pair_bootstrap,
    two_stage_bootstrap,
)
from rsae_utils.names import SEED_REPLICATES, table_spec
from rsae_utils.store import read_json

TOKEN_BASELINE = "token-baseline"
# Variants the claims call "random": every re-randomized one and step-0 (the control is its own claim).
NOT_RANDOM = ("trained", "control")


class MissingInput(Exception):
    """An input of a claim is missing or lacks what the claim needs: the claim's row says "not run"."""


@dataclass(frozen=True)
class Options:
    """Notebook 10's parameters that the rules and intervals use (see ``rsae_utils/params/nb10_claims.py``)."""

    auroc_margin: float = 0.05
    metric_margin: float = 0.05
    chance_margin: float = 0.05
    entropy_margin: float = 0.1
    corr_margin: float = 0.1
    share_margin: float = 0.05
    band_margin: float = 0.1
    majority: float = 0.5
    mmcs_high: float = 0.9
    mmcs_low: float = 0.5
    mmcs_drop: float = 0.1
    toy_ratio: float = 2.0
    max_dead_fraction: float = 0.5
    min_corr_latents: int = 20
    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Options:
        """The options named in ``values`` (a notebook Config, say); other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: values[k] for k in values if k in names})


@dataclass(frozen=True)
class Result:
    """One claim as measured here: the value, its interval and what the interval covers, and the verdict."""

    value: float
    lo: float
    hi: float
    interval_over: str
    verdict: Verdict
    measure: str
    # "interval": [lo, hi] is an uncertainty interval; "range": the spread of the value over views, measures or
    # layers of one run, which the table shows in its own column and never as an interval.
    kind: str = "interval"


class Inputs:
    """The CSV tables (and their figure manifests) of one profile's figures folder, read once each; every table
    through its entry in :data:`rsae_utils.names.TABLES` (the columns the claims read, the notebook that writes it).
    """

    def __init__(self, figures: Path, options: Options):
        self.figures = Path(figures)
        self.opt = options
        self._tables: dict[str, pd.DataFrame] = {}

    def has(self, name: str) -> bool:
        return (self.figures / f"{name}.csv").is_file()

    def table(self, name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
        """The registered table ``name`` with its registered columns and ``columns`` (those one claim adds);
        ``MissingInput`` naming the notebook to rerun when it is missing, unreadable, short of a column or empty."""
        spec = table_spec(name)
        if name not in self._tables:
            path = self.figures / f"{name}.csv"
            if not path.is_file():
                raise MissingInput(f"{path.name} is missing (run {spec.rerun()})")
            try:
                self._tables[name] = pd.read_csv(path)
            except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
                raise MissingInput(f"{path.name} is unreadable ({err}; rerun {spec.rerun()})") from None
        df = self._tables[name]
        missing = [c for c in dict.fromkeys([*spec.columns, *columns]) if c not in df.columns]
        if missing:
            raise MissingInput(f"{name}.csv lacks the columns {missing} (rerun {spec.rerun()})")
        if df.empty:
            raise MissingInput(f"{name}.csv has no rows (rerun {spec.rerun()})")
        return df

    def params(self, name: str) -> dict[str, Any]:
        """The parameters the figure's manifest records ({} when it has none)."""
        table_spec(name)  # a registered table's manifest only
        path = self.figures / f"{name}.manifest.json"
        try:
            return dict(read_json(path).get("params") or {})
        except (OSError, ValueError, AttributeError):
            return {}

    def manifest(self, name: str) -> dict[str, Any]:
        """The figure's whole manifest (``MissingInput`` when it is missing or unreadable)."""
        table_spec(name)
        path = self.figures / f"{name}.manifest.json"
        try:
            return dict(read_json(path))
        except (OSError, ValueError, TypeError) as err:
            raise MissingInput(f"{path.name} is missing or unreadable ({err})") from None

    def seed_var(self, variant: str, metric: str) -> float:
        """Between-seed variance of ``metric`` (e.g. "explained_variance", "token-baseline detection") for
        ``variant``, from notebook 07's replicates of notebook 03's SAE at one layer; 0.0 where not measured."""
        if not self.has(SEED_REPLICATES):
            return 0.0
        t = self.table(SEED_REPLICATES)
        v = t[(t.variant == variant) & (t.metric == metric)].value.dropna()
        return float(np.var(v, ddof=1)) if len(v) > 1 else 0.0

    def seed_note(self, layers: Sequence[int] | None = None) -> str:
        """What the intervals say about SAE seeds, for a claim's ``interval_over``: where the claim reads ``layers``
        other than the one the spread was measured at, it says the spread is borrowed there."""
        if not self.has(SEED_REPLICATES):
            return f"not SAE seeds (no {SEED_REPLICATES}.csv)"
        t = self.table(SEED_REPLICATES)
        measured = sorted({int(x) for x in t.layer})
        at = ", ".join(map(str, measured))
        note = f"+ SAE seeds (spread of {t.seed.nunique()} seeds measured at layer {at}"
        other = sorted({int(x) for x in (layers if layers is not None else ())} - set(measured))
        if layers is None:
            return note + ", borrowed for every other layer)"
        if other:
            return note + f", borrowed for layers {', '.join(map(str, other))})"
        return note + ")"

    def boot(self, groups: Sequence[np.ndarray], stat, offset: int = 0) -> tuple[float, float, float]:
        o = self.opt
        return bootstrap(groups, stat, o.n_boot, o.seed + offset, o.ci_level)

    def boot_within(self, groups: Sequence[np.ndarray], kind: str, stat, offset: int = 0) -> tuple[float, float, float]:
        """:func:`~rsae_utils.claims.rules.two_stage_bootstrap`: latents, then each latent's windows."""
        o = self.opt
        return two_stage_bootstrap(groups, kind, stat, o.n_boot, o.seed + offset, o.ci_level)

    def seed_boot(self, cells: Sequence[pd.DataFrame], col: str, stat, offset: int = 0) -> tuple[float, float, float]:
        """:func:`~rsae_utils.claims.rules.seed_pair_bootstrap` of ``stat`` of the cells' mean ``col`` (each cell:
        one row per SAE seed pair, columns ``seed_a``, ``seed_b``)."""
        o = self.opt
        groups = [(c.seed_a.to_numpy(int), c.seed_b.to_numpy(int), c[col].to_numpy(float)) for c in cells]
        return seed_pair_bootstrap(groups, stat, o.n_boot, o.seed + offset, o.ci_level)


def random_variants(variants: Sequence[str]) -> list[str]:
    return [v for v in dict.fromkeys(variants) if v not in NOT_RANDOM]


def require(cond: bool, message: str) -> None:
    if not cond:
        raise MissingInput(message)


SeedVar = Callable[[str, str], float]  # (variant, scorer) -> between-seed variance of that cell's mean AUROC


def paired_auroc_gap(
    rows: pd.DataFrame, level: float, seed_var: SeedVar | None = None
) -> tuple[float, float, float, int]:
    """Random minus trained AUROC from pooled per-(variant, layer, scorer) rows with ``auroc`` and ``auroc_sd``:
    per (layer, scorer) the random variants' mean minus the trained model's, then the mean over those cells; the
    interval is normal, each cell's estimate independent (the pooled example-level bootstraps of notebook 05, plus
    ``seed_var``'s between-seed variance of each cell when given). Returns (estimate, lo, hi, cells)."""
    sv = seed_var or (lambda variant, scorer: 0.0)
    est, sd = [], []
    for (_, scorer), g in rows.groupby(["layer", "scorer"], sort=True):
        t, r = g[g.variant == "trained"], g[g.variant.isin(random_variants(g.variant))]
        if t.empty or r.empty:
            continue
        est.append(float(r.auroc.mean() - t.auroc.iloc[0]))
        r_var = float((r.auroc_sd**2).sum()) + sum(sv(v, scorer) for v in r.variant)
        sd.append(math.sqrt(r_var / len(r) ** 2 + float(t.auroc_sd.iloc[0]) ** 2 + sv("trained", scorer)))
    require(len(est) > 0, "no layer has both the trained model and a random variant scored")
    e, lo, hi = mean_of_independent(est, sd, level)
    return e, lo, hi, len(est)


def mean_auroc(
    rows: pd.DataFrame, level: float, sd_col: str | None = "auroc_sd", seed_var: SeedVar | None = None
) -> tuple[float, float, float]:
    """The mean ``auroc`` of independent cells with a normal interval (sd from ``sd_col``, else from the cells'
    ``auroc_lo``/``auroc_hi``; plus ``seed_var``'s between-seed variance of each (variant, scorer) cell)."""
    sd = (
        rows[sd_col]
        if sd_col and sd_col in rows
        else [sd_from_ci(a, b, level) for a, b in zip(rows.auroc_lo, rows.auroc_hi)]
    )
    sd = np.asarray(sd, float)
    if seed_var is not None:
        sd = np.sqrt(sd**2 + np.array([seed_var(v, s) for v, s in zip(rows.variant, rows.scorer)], float))
    return mean_of_independent(rows.auroc.to_numpy(float), sd, level)


def fmt_num(x: float) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.3g}"
