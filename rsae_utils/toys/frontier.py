"""Explained variance against code sparsity (notebook 02's frontier): SAEs on real vectors, frontiers, comparisons.

Data sources. The toy conditions (``raw``, ``mlp``, ``gaussian``) come from notebook 02's MMCS sweep: every SAE
there is scored on held-out data with the four measures of :mod:`rsae_utils.toys.sparsity`. This module adds
``embedding``, the rows of a token-embedding matrix (SmolLM2's by default; the authors used Pythia's and GloVe's),
and ``embedding_gaussian``, a Gaussian with those rows' mean and full covariance (the control that keeps
everything second-order and removes any sparse structure), trained with the same batched L1 trainer, loss and
optimiser (:func:`rsae_utils.toys.mmcs.train_batched`) over L1 coefficients on the toy grid's scale
(``emb_l1_values``).

Row preparation. A random permutation splits the rows into training and held-out rows. Both are centred on the
training mean (the SAE has no decoder bias; SmolLM2's mean row has norm ~2.2 against a typical row norm of ~3.2,
a shared offset the latents would otherwise spend themselves on) and scaled by one scalar to the toy raw data's
mean squared norm, so the same L1 coefficients mean the same trade-off (the loss balances a per-element error
against a per-latent penalty, and a dictionary of the same multiple of the data dimension is used).

Frontier. Per data source, every SAE (dictionary size x L1 x seed) is one point (sparsity, EV) with
EV = 1 - FVU on held-out data; the frontier is the Pareto set (:func:`rsae_utils.toys.sparsity.pareto_frontier`).
Two sources are compared where both frontiers have points with EV >= 0.05: each frontier is read as drawn (linear
between its points, :func:`ev_on_frontier`) on a grid over the shared sparsity range (:func:`compare`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from rsae_utils import store
from rsae_utils.paths import frontier_sweep_dir
from rsae_utils.subject.models import token_embedding
from rsae_utils.toys import mmcs, sparsity, synthetic
from rsae_utils.toys.synthetic import SparseFeatureWorld, SyntheticSpec, seeded_generator

# Sweep column -> (axis label, lower value = sparser?).
MEASURES: dict[str, tuple[str, bool]] = {
    "l0": ("L0 (active latents)", True),
    "l1_norm": ("L1 of the code", True),
    "l1_over_sqrt_l2": ("L1 / sqrt(L2)", True),
    "hoyer": ("Hoyer sparsity (higher = sparser)", False),
}
EMBEDDING, EMBEDDING_GAUSSIAN = "embedding", "embedding_gaussian"
ROW_COLUMNS = (
    "condition",
    "dict_size",
    "l1",
    "seed",
    "l0",
    "fvu",
    "dead_frac",
    "l1_norm",
    "l1_over_sqrt_l2",
    "hoyer",
    "train_s",
)
_ROWS, _GAUSS, _EVAL = 307, 311, 313  # generator offsets (synthetic.seeded_generator) of this module's random streams


# --------------------------------------------------------------------------------------------------------------
# Real vectors
# --------------------------------------------------------------------------------------------------------------
def prepare_rows(
    w: torch.Tensor, n_rows: int, n_eval: int, target_ms: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(train rows, held-out rows, info): a random subset of ``n_rows`` rows of ``w`` (0: all), the first
    ``n_eval`` of them held out, both centred on the training mean and scaled to mean squared norm ``target_ms``."""
    w = w.float()
    perm = torch.randperm(len(w), generator=seeded_generator(_ROWS, seed))
    if n_rows:
        perm = perm[:n_rows]
    if not 0 < n_eval < len(perm):
        raise ValueError(f"need 0 < n_eval < number of rows; got n_eval={n_eval} of {len(perm)} rows")
    held, train = w[perm[:n_eval]], w[perm[n_eval:]]
    mean = train.mean(0)
    train, held = train - mean, held - mean
    scale = math.sqrt(target_ms / float(train.pow(2).sum(1).mean()))
    info = {
        "n_train": len(train),
        "n_eval": len(held),
        "d": int(w.shape[1]),
        "scale": scale,
        "mean_row_norm": float(mean.norm()),
        "typical_row_norm": float(w.norm(dim=1).mean()),
    }
    return train * scale, held * scale, info


class GaussianLike:
    """A Gaussian with the mean and (full) covariance of the rows of ``x``."""

    def __init__(self, x: torch.Tensor):
        x = x.double()
        self.mean = x.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov(x.T))
        # Eigen-factor rather than Cholesky: a covariance of fewer rows than dimensions is singular.
        self.factor = (evecs * evals.clamp_min(0).sqrt()).float()
        self.mean = self.mean.float()
        self.d_model = int(x.shape[1])

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self.mean + torch.randn(n, self.d_model, generator=gen) @ self.factor.T


class RowStream:
    """Fresh batches for ``groups`` = [(source, seed), ...]: ``next()`` -> (n_groups, batch, h).

    A source is a row matrix (rows drawn uniformly with replacement) or a :class:`GaussianLike`. Each group owns
    its generator, so a group's batches do not depend on the other groups (as in ``synthetic.DataStream``).
    """

    def __init__(
        self, sources: Mapping[str, torch.Tensor | GaussianLike], groups: Sequence[tuple[str, int]], batch: int
    ):
        self.sources, self.groups, self.batch = dict(sources), list(groups), batch
        dims = {s.d_model if isinstance(s, GaussianLike) else int(s.shape[1]) for s in self.sources.values()}
        if len(dims) != 1:
            raise ValueError(f"all sources must have one dimension; got {sorted(dims)}")
        self.d_model = dims.pop()
        self._gens = [
            seeded_generator(_GAUSS if isinstance(self.sources[c], GaussianLike) else _ROWS, s, 1 + i)
            for i, (c, s) in enumerate(self.groups)
        ]

    def next(self) -> torch.Tensor:
        out = []
        for (c, _), gen in zip(self.groups, self._gens):
            src = self.sources[c]
            if isinstance(src, GaussianLike):
                out.append(src.sample(self.batch, gen))
            else:
                out.append(src[torch.randint(len(src), (self.batch,), generator=gen)])
        return torch.stack(out)


def run_row_sweep(
    train: Mapping[str, torch.Tensor | GaussianLike],
    x_eval: Mapping[str, torch.Tensor],
    dict_sizes: Sequence[int],
    l1_values: Sequence[float],
    seeds: Sequence[int],
    spec: mmcs.TrainSpec,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Train every (source, dict_size, l1, seed) SAE -- one batched program per dictionary size -- and score it on
    ``x_eval[source]``; returns ``ROW_COLUMNS`` (the MMCS sweep's columns without MMCS: no ground truth here)."""
    conditions = list(train)
    frames = []
    for d in dict_sizes:
        g = mmcs.grid(conditions, seeds, l1_values)
        stream = RowStream(train, [(c, int(s)) for c in conditions for s in seeds], spec.batch)
        t0 = time.perf_counter()
        saes = mmcs.train_batched(
            stream, g["group"].tolist(), g["l1"].tolist(), g["seed"].tolist(), int(d), spec, device=device
        )
        train_s = round(time.perf_counter() - t0, 2)
        scores = pd.DataFrame([mmcs.evaluate_one(*saes.model(m), x_eval[c]) for m, c in enumerate(g["condition"])])
        g = g.drop(columns="group").assign(dict_size=int(d), train_s=train_s).reset_index(drop=True)
        frames.append(pd.concat([g, scores], axis=1))
    return pd.concat(frames, ignore_index=True)[list(ROW_COLUMNS)]


# --------------------------------------------------------------------------------------------------------------
# Frontiers
# --------------------------------------------------------------------------------------------------------------
def frontier_table(df: pd.DataFrame, measures: Sequence[str] = tuple(MEASURES)) -> pd.DataFrame:
    """Long table (measure, condition, sparsity, ev) of each condition's frontier; EV = 1 - ``fvu``."""
    rows = []
    for m in measures:
        for c, sub in df.groupby("condition", sort=False):
            pts = np.column_stack([sub[m].to_numpy(float), 1.0 - sub["fvu"].to_numpy(float)])
            front = sparsity.pareto_frontier(pts, lower_is_sparser=MEASURES[m][1])
            rows += [{"measure": m, "condition": c, "sparsity": x, "ev": y} for x, y in front]
    return pd.DataFrame(rows, columns=["measure", "condition", "sparsity", "ev"])


def best_ev_at(front: np.ndarray, x, lower_is_sparser: bool = True) -> np.ndarray:
    """Best EV among the frontier's points at least as sparse as each ``x`` (NaN where no point is)."""
    front = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    out = np.full(x.shape, np.nan)
    for i, v in enumerate(x):
        ok = front[:, 0] <= v if lower_is_sparser else front[:, 0] >= v
        if ok.any():
            out[i] = front[ok, 1].max()
    return out


def ev_on_frontier(front: np.ndarray, x, log_x: bool = True) -> np.ndarray:
    """The frontier as drawn: EV linearly interpolated between its points (in log x when ``log_x``), NaN outside
    its range. With a coarse L1 grid this reads a frontier fairly where :func:`best_ev_at` (what an SAE of the grid
    achieved) drops to the previous point's EV."""
    front = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if not len(front):
        return np.full(x.shape, np.nan)
    front = front[np.argsort(front[:, 0], kind="stable")]
    fx, qx = (np.log(front[:, 0]), np.log(x)) if log_x else (front[:, 0], x)
    return np.interp(qx, fx, front[:, 1], left=np.nan, right=np.nan)


def compare(
    front_a: np.ndarray,
    front_b: np.ndarray,
    lower_is_sparser: bool = True,
    n: int = 41,
    min_ev: float = 0.05,
    tol: float = 0.01,
) -> dict:
    """How far frontier ``a`` lies above ``b`` over the sparsity range both cover with meaningful reconstructions.

    Points with EV below ``min_ev`` (SAEs that reconstruct next to nothing, dead or nearly) are left out first.
    ``lo``/``hi``: the shared range (the later start to the earlier end); on ``n`` levels in it (log-spaced for
    the lower-is-sparser measures, which are positive) both frontiers are read with :func:`ev_on_frontier`.
    ``gap``: mean EV difference a - b; ``share_above``/``share_below``: share of levels where a is higher/lower by
    more than ``tol``. All NaN where the ranges do not overlap.
    """
    keys = ("lo", "hi", "gap", "share_above", "share_below")
    a, b = (np.asarray(f, dtype=np.float64).reshape(-1, 2) for f in (front_a, front_b))
    a, b = a[a[:, 1] >= min_ev], b[b[:, 1] >= min_ev]
    if not len(a) or not len(b):
        return dict.fromkeys(keys, math.nan)
    lo, hi = max(a[:, 0].min(), b[:, 0].min()), min(a[:, 0].max(), b[:, 0].max())
    log_x = lower_is_sparser and lo > 0
    if lo > hi:
        return dict.fromkeys(keys, math.nan)
    grid = np.geomspace(lo, hi, n) if log_x else np.linspace(lo, hi, n)
    d = ev_on_frontier(a, grid, log_x) - ev_on_frontier(b, grid, log_x)
    d = d[np.isfinite(d)]
    if not len(d):
        return dict.fromkeys(keys, math.nan)
    return {
        "lo": float(lo),
        "hi": float(hi),
        "gap": float(d.mean()),
        "share_above": float((d > tol).mean()),
        "share_below": float((d < -tol).mean()),
    }


def compare_sources(fronts: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """:func:`compare` for every measure of ``fronts`` (a :func:`frontier_table`) and every (source, reference)
    pair present in it."""
    rows = []
    for m, sub in fronts.groupby("measure", sort=False):
        by = {c: s[["sparsity", "ev"]].to_numpy() for c, s in sub.groupby("condition", sort=False)}
        for a, b in pairs:
            if a in by and b in by:
                rows.append({"measure": m, "source": a, "reference": b, **compare(by[a], by[b], MEASURES[m][1])})
    return pd.DataFrame(
        rows, columns=["measure", "source", "reference", "lo", "hi", "gap", "share_above", "share_below"]
    )


def verdict(share_above: float, share_below: float) -> str:
    """Plain words for a :func:`compare` result: ``above`` (higher over at least half the shared range and lower
    over at most a tenth), ``below`` (the mirror), ``about level with`` (apart by more than the tolerance over at
    most half of it), else ``crossing``."""
    if not (math.isfinite(share_above) and math.isfinite(share_below)):
        return "not comparable with (no shared sparsity range)"
    if share_above >= 0.5 and share_below <= 0.1:
        return "above"
    if share_below >= 0.5 and share_above <= 0.1:
        return "below"
    if share_above + share_below <= 0.5:
        return "about level with"
    return "crossing"


# --------------------------------------------------------------------------------------------------------------
# Notebook 02's comparison and its verdicts in words
# --------------------------------------------------------------------------------------------------------------
# (source, reference) pairs notebook 02 compares: each source with its own control first, then across families
COMPARISONS = (
    ("raw", "gaussian"),
    ("mlp", "gaussian"),
    (EMBEDDING, EMBEDDING_GAUSSIAN),
    (EMBEDDING, "raw"),
    (EMBEDDING, "gaussian"),
)


def points_table(toy: pd.DataFrame, embedding: pd.DataFrame) -> pd.DataFrame:
    """Every SAE of the toy and the embedding sweeps in one table, with its explained variance ``ev`` = 1 - FVU."""
    points = pd.concat([toy, embedding], ignore_index=True)
    points["ev"] = 1.0 - points["fvu"]
    return points


def comparison_table(fronts: pd.DataFrame, pairs: Sequence[tuple[str, str]] = COMPARISONS) -> pd.DataFrame:
    """:func:`compare_sources` with each row's :func:`verdict`."""
    out = compare_sources(fronts, pairs)
    out["verdict"] = [verdict(a, b) for a, b in zip(out["share_above"], out["share_below"], strict=True)]
    return out


def source_names(emb_model: str) -> dict[str, str]:
    """Each source of the comparison in words (``emb_model``: whose embedding rows)."""
    return {
        "raw": "raw toy data",
        "mlp": "toy data through the random MLP",
        "gaussian": "the toy Gaussian control",
        EMBEDDING: f"{emb_model} embedding rows",
        EMBEDDING_GAUSSIAN: "their matched Gaussian",
    }


def _verdict_sentence(r, names: Mapping[str, str]) -> str:
    label = MEASURES[r.measure][0].split(" (")[0]
    if r.verdict.startswith("not comparable"):
        return f"- against {label}: {names[r.source]} are not comparable with {names[r.reference]} (no shared range)."
    return (
        f"- against {label}: the frontier of {names[r.source]} is **{r.verdict}** that of {names[r.reference]} "
        f"(mean EV difference {r.gap:+.3f}; higher over {r.share_above:.0%} and lower over {r.share_below:.0%} "
        f"of {r.lo:.3g}..{r.hi:.3g})."
    )


def verdict_markdown(comparison: pd.DataFrame, names: Mapping[str, str]) -> str:
    """The verdicts of a :func:`comparison_table` in words (markdown): per (source, reference) pair, on how many
    measures the source is above, then one line per measure with its numbers."""
    text = []
    for (a, b), sub in comparison.groupby(["source", "reference"], sort=False):
        above = int((sub["verdict"] == "above").sum())
        text.append(f"**{names[a]} vs {names[b]}**: above on {above} of {len(sub)} measures.")
        text += [_verdict_sentence(r, names) for r in sub.itertuples()]
    return "\n".join(text)


def sparse_structure_line(comparison: pd.DataFrame, names: Mapping[str, str]) -> str:
    """One line: does each source with real sparse structure (raw toy data, embedding rows) lie above its Gaussian
    control on every measure?"""
    wins = comparison[
        comparison["reference"].isin(["gaussian", EMBEDDING_GAUSSIAN]) & comparison["source"].isin(["raw", EMBEDDING])
    ]
    return "sources with real sparse structure above their Gaussian control on every measure: " + ", ".join(
        f"{names[s]}: {'yes' if (g['verdict'] == 'above').all() else 'no'}"
        for s, g in wins.groupby("source", sort=False)
    )


# --------------------------------------------------------------------------------------------------------------
# Notebook 02 glue: the cached embedding sweep of a resolved config
# --------------------------------------------------------------------------------------------------------------
_EMB_KEYS = (
    "emb_model",
    "emb_rows",
    "emb_eval_rows",
    "emb_dict_ratios",
    "emb_seeds",
    "emb_steps",
    "emb_gaussian",
    "emb_l1_values",
    "lr",
    "adam_beta2",
    "batch",
    "decay_frac",
    "device",
    *mmcs._WORLD_KEYS,
)


def embedding_sweep_from_config(cfg, path=None, force: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run (or reuse) the SAE sweep on embedding rows (and their matched Gaussian) a notebook-02 config describes.

    Returns (table with ``ROW_COLUMNS``, manifest with the row preparation's ``info``). Cached like the MMCS sweep
    (``store.cached_artifact`` keyed by the parameters and this module's code).
    """
    params = {k: cfg[k] for k in _EMB_KEYS}
    params["device"] = mmcs.resolve_device(params["device"])
    path = path or frontier_sweep_dir(cfg.profile)

    def build(tmp):
        t0 = time.perf_counter()
        world = SparseFeatureWorld(SyntheticSpec(**{k: cfg[k] for k in mmcs._WORLD_KEYS}))
        target_ms = float((world.raw_std.pow(2) + world.raw_mean.pow(2)).sum())  # raw data's E||x||^2
        w = token_embedding(cfg.emb_model)
        train, held, info = prepare_rows(w, cfg.emb_rows, cfg.emb_eval_rows, target_ms, seed=cfg.world_seed)
        sources: dict = {EMBEDDING: train}
        x_eval = {EMBEDDING: held}
        if cfg.emb_gaussian:
            sources[EMBEDDING_GAUSSIAN] = gauss = GaussianLike(train)
            x_eval[EMBEDDING_GAUSSIAN] = gauss.sample(len(held), seeded_generator(_EVAL, cfg.world_seed))
        spec = mmcs.TrainSpec(
            steps=cfg.emb_steps, lr=cfg.lr, batch=cfg.batch, decay_frac=cfg.decay_frac, betas=(0.9, cfg.adam_beta2)
        )
        sizes = [r * info["d"] for r in cfg.emb_dict_ratios]
        with mmcs.torch_threads(cfg.threads):
            df = run_row_sweep(sources, x_eval, sizes, cfg.emb_l1_values, cfg.emb_seeds, spec, device=params["device"])
        df.to_csv(tmp / "sweep.csv", index=False)
        return {"rows": info, "target_ms": target_ms, "sweep_wall_s": round(time.perf_counter() - t0, 1)}

    out = store.cached_artifact(
        path, params, build, code=(sys.modules[__name__], mmcs, synthetic, sparsity), force=force or not cfg.use_cache
    )
    return pd.read_csv(out / "sweep.csv"), store.load_manifest(out)
