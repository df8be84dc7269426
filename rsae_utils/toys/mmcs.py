"""L1 sparse autoencoders on synthetic data, mean max cosine similarity (MMCS), and a batched sweep trainer.

The SAE (after Sharkey et al. 2022): ``z = ReLU(x W_enc + b_enc)``, ``x_hat = z W_dec`` with a bias-free decoder
whose ``d`` rows (dictionary atoms) are renormalised to unit length after every optimiser step.

Loss normalisation (the position of the Goldilocks band on the L1 axis depends on it)::

    loss = mean over (batch, d_model) of (x_hat - x)^2  +  l1 * mean over (batch, d_latent) of z

Both terms are *means over elements*, so the reconstruction term is per input dimension and the sparsity term is
per latent. Because the sparsity mean divides by the dictionary size, the band moves right roughly in proportion
to the dictionary size (a 2x wider SAE needs ~2x the coefficient for the same per-sample penalty).

Training is batched: every grid point (condition x seed x l1 for one dictionary size) is one slice of stacked
parameter tensors ``(M, ...)``; one step is a handful of ``torch.bmm`` calls with hand-written gradients and one
Adam update over the stacked tensors (Adam is elementwise, so this equals M independent Adams). ``train_one`` is
the plain one-model reference (autograd, 2-D matmuls, the same init, data, schedule and renormalisation); the tests
check that the two agree and the benchmark measures the speed-up.

Defaults of this module: tied initialisation (``W_enc = W_dec^T``, ``b_enc = 0``, atoms Gaussian then
normalised), Adam (betas 0.9/0.999, eps 1e-8), constant learning rate with a linear decay to 0 over the last
``decay_frac`` of the steps.

This trainer is the toy's own (notebooks 01, 02 and 07's toy part): it trains many tiny L1 SAEs at once on
synthetic data. It is not one of the SAE stage's trainers (:mod:`rsae_utils.sae.trainers`), which train one SAE
per layer of a transformer's activation cache.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from rsae_utils import store
from rsae_utils.paths import mmcs_sweep_dir
from rsae_utils.toys import sparsity, synthetic
from rsae_utils.toys.synthetic import DataStream, SparseFeatureWorld, SyntheticSpec, seeded_generator
from rsae_utils.vectors import unit_rows

# l1_norm, l1_over_sqrt_l2, hoyer: sparsity of the codes (toys.sparsity; "l1" is the coefficient here).
SWEEP_COLUMNS = (
    "condition",
    "dict_size",
    "l1",
    "seed",
    "mmcs",
    "l0",
    "fvu",
    "dead_frac",
    "l1_norm",
    "l1_over_sqrt_l2",
    "hoyer",
)
_INIT = 31


# --------------------------------------------------------------------------------------------------------------
# MMCS
# --------------------------------------------------------------------------------------------------------------
def mmcs(dictionary: torch.Tensor, features: torch.Tensor) -> float:
    """Mean over ground-truth features (rows of ``features``) of the max cosine similarity with any dictionary row."""
    return float(max_cosines(dictionary, features).mean())


def max_cosines(dictionary: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """(G,) best cosine similarity of each feature with any dictionary atom (rows of a (d, h) dictionary)."""
    return (unit_rows(features.float()) @ unit_rows(dictionary.float()).T).max(dim=1).values


def mmcs_batched(w_dec: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """(M,) MMCS of each stacked dictionary ``w_dec`` (M, d, h) against ``features`` (G, h)."""
    f = unit_rows(features.float())
    out = [(f @ unit_rows(w).T).max(dim=1).values.mean() for w in w_dec]
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSpec:
    """Optimisation settings shared by every SAE of a sweep."""

    steps: int = 3000
    lr: float = 3e-3
    batch: int = 512
    decay_frac: float = 0.2  # linear lr decay to 0 over this final fraction of the steps
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def to_dict(self) -> dict:
        return asdict(self)

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at optimiser step ``step`` (0-based)."""
        n_decay = int(round(self.decay_frac * self.steps))
        start = self.steps - n_decay
        if n_decay <= 0 or step < start:
            return 1.0
        return max(0.0, (self.steps - step) / (n_decay + 1))


def init_params(d_model: int, dict_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W_enc (h, d), b_enc (d,), W_dec (d, h)) of one SAE: unit Gaussian atoms, tied encoder, zero bias."""
    gen = seeded_generator(_INIT, dict_size, seed)
    w_dec = unit_rows(torch.randn(dict_size, d_model, generator=gen))
    return w_dec.T.contiguous(), torch.zeros(dict_size), w_dec


def _adam(params: list[torch.Tensor], spec: TrainSpec) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    # The fused kernel is ~6x faster than the default foreach Adam on CPU and is elementwise, so stacked and
    # one-at-a-time training stay identical.
    try:
        opt = torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, fused=True)
    except (RuntimeError, TypeError):  # a build or device without the fused kernel
        opt = torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, eps=spec.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, spec.lr_factor)
    return opt, sched


@dataclass
class StackedSAEs:
    """M SAEs of one dictionary size as stacked tensors."""

    w_enc: torch.Tensor  # (M, h, d)
    b_enc: torch.Tensor  # (M, 1, d)
    w_dec: torch.Tensor  # (M, d, h)

    @property
    def n_models(self) -> int:
        return self.w_enc.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, h) or (B, h) -> z (M, B, d)."""
        if x.dim() == 2:
            x = x.expand(self.n_models, *x.shape)
        return torch.relu(torch.baddbmm(self.b_enc, x, self.w_enc))

    def model(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.w_enc[m], self.b_enc[m, 0], self.w_dec[m]


def train_batched(
    stream: DataStream,
    group_of_model: Sequence[int],
    l1: Sequence[float],
    seeds: Sequence[int],
    dict_size: int,
    spec: TrainSpec,
    progress: Callable[[int], None] | None = None,
    device: str | torch.device = "cpu",
) -> StackedSAEs:
    """Train M SAEs at once. Model m reads group ``group_of_model[m]`` of ``stream`` and uses ``l1[m]``, ``seeds[m]``.

    ``stream`` is anything with ``d_model`` and ``next() -> (n_groups, B, h)``: a ``synthetic.DataStream`` or the
    row stream of ``toys.frontier``. One step: draw one batch per data group, gather it per model, forward/backward
    with ``bmm`` and hand-written gradients (of the summed per-model losses, so each model gets exactly its own
    gradient), one Adam step over the stacked tensors, then renormalise every decoder row.
    """
    M = len(l1)
    if not (len(group_of_model) == len(seeds) == M):
        raise ValueError("group_of_model, l1 and seeds must have one entry per model")
    h = stream.d_model
    inits = [init_params(h, dict_size, int(s)) for s in seeds]
    w_enc = torch.stack([i[0] for i in inits]).to(device)
    b_enc = torch.stack([i[1] for i in inits])[:, None, :].to(device)
    w_dec = torch.stack([i[2] for i in inits]).to(device)
    params = [w_enc, b_enc, w_dec]
    grads = [torch.zeros_like(p) for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt, sched = _adam(params, spec)
    idx = torch.as_tensor(list(group_of_model), dtype=torch.long, device=device)
    l1_t = torch.as_tensor(list(l1), dtype=torch.float32, device=device)[:, None, None]
    B = spec.batch
    l1_scaled = l1_t / (B * dict_size)  # d(l1 * mean z)/dz
    rec_scale = 2.0 / (B * h)  # d(mean (x_hat - x)^2)/dx_hat per unit residual
    identity = list(group_of_model) == list(range(M))
    for step in range(spec.steps):
        xg = stream.next().to(device)
        x = xg if identity else xg.index_select(0, idx)
        with torch.no_grad():
            pre = torch.baddbmm(b_enc, x, w_enc)  # (M, B, d)
            mask = pre > 0
            z = pre.clamp_(min=0)
            resid = torch.bmm(z, w_dec).sub_(x).mul_(rec_scale)  # gradient w.r.t. x_hat
            torch.bmm(z.transpose(1, 2), resid, out=grads[2])
            dpre = torch.bmm(resid, w_dec.transpose(1, 2)).add_(l1_scaled).mul_(mask)
            torch.sum(dpre, dim=1, keepdim=True, out=grads[1])
            torch.bmm(x.transpose(1, 2), dpre, out=grads[0])
            opt.step()
            sched.step()
            w_dec.div_(w_dec.norm(dim=2, keepdim=True).clamp_min_(1e-12))
        if progress is not None:
            progress(step)
    for p in params:
        p.grad = None
    return StackedSAEs(w_enc.cpu(), b_enc.cpu(), w_dec.cpu())


def train_one(
    next_batch: Callable[[], torch.Tensor],
    l1: float,
    seed: int,
    dict_size: int,
    d_model: int,
    spec: TrainSpec,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference trainer for one SAE: autograd on the loss as written, same init, schedule and renormalisation."""
    w_enc, b_enc, w_dec = (t.clone().requires_grad_(True) for t in init_params(d_model, dict_size, seed))
    opt, sched = _adam([w_enc, b_enc, w_dec], spec)
    for _ in range(spec.steps):
        x = next_batch()
        z = torch.relu(x @ w_enc + b_enc)
        x_hat = z @ w_dec
        loss = (x_hat - x).pow(2).mean() + l1 * z.mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            w_dec.div_(w_dec.norm(dim=1, keepdim=True).clamp_min_(1e-12))
    return w_enc.detach(), b_enc.detach(), w_dec.detach()


# --------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_one(
    w_enc: torch.Tensor, b_enc: torch.Tensor, w_dec: torch.Tensor, x: torch.Tensor, chunk: int = 4096
) -> dict[str, float]:
    """Code sparsity (mean over samples of L0, L1 as ``l1_norm``, L1/sqrt(L2), Hoyer: ``toys.sparsity``), FVU
    and the share of latents that never fire on ``x``."""
    fired = torch.zeros(w_enc.shape[1], dtype=torch.bool)
    sq_err = 0.0
    per = []
    for xs in x.split(chunk):
        z = torch.relu(xs @ w_enc + b_enc)
        fired |= (z > 0).any(0)
        per.append(sparsity.per_sample_torch(z))
        sq_err += float((z @ w_dec - xs).pow(2).sum())
    total_var = float((x - x.mean(0)).pow(2).sum())
    m = sparsity.mean_per_sample(per)
    m["l1_norm"] = m.pop("l1")
    return {**m, "fvu": sq_err / total_var, "dead_frac": 1.0 - float(fired.float().mean())}


def evaluate(saes: StackedSAEs, x_eval: Sequence[torch.Tensor], features: Sequence[torch.Tensor]) -> pd.DataFrame:
    """Per-model metrics; ``x_eval[m]``/``features[m]`` are model m's held-out data and ground-truth directions."""
    rows = []
    for m in range(saes.n_models):
        w_enc, b_enc, w_dec = saes.model(m)
        rows.append({"mmcs": mmcs(w_dec, features[m]), **evaluate_one(w_enc, b_enc, w_dec, x_eval[m])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Sweep
# --------------------------------------------------------------------------------------------------------------
def grid(conditions: Sequence[str], seeds: Sequence[int], l1_values: Sequence[float]) -> pd.DataFrame:
    """The models of one dictionary size, in training order, with the data group each reads."""
    rows = []
    for gi, (c, s) in enumerate((c, s) for c in conditions for s in seeds):
        rows += [{"condition": c, "seed": int(s), "l1": float(v), "group": gi} for v in l1_values]
    return pd.DataFrame(rows)


def run_sweep(
    world: SparseFeatureWorld,
    conditions: Sequence[str],
    dict_sizes: Sequence[int],
    l1_values: Sequence[float],
    seeds: Sequence[int],
    spec: TrainSpec,
    n_eval: int = 8192,
    device: str | torch.device = "cpu",
    progress: bool | Callable[[int], None] = False,
    seeds_per_program: int | None = None,
    trend_seeds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Train every (condition, dict_size, l1, seed) SAE -- one batched program per dictionary size -- and score it.

    Returns a tidy DataFrame with ``SWEEP_COLUMNS`` (plus ``train_s``, the wall time of that batched program).
    Each seed draws its own data stream and its own SAE initialisation; all l1 values of a seed see the same
    batches and start from the same dictionary, so differences along the L1 axis are the penalty's.
    ``seeds_per_program`` splits a big grid into several programs by seed (to bound memory); the numbers do not
    change, since a seed's stream does not depend on which other seeds are drawn with it. ``trend_seeds``: the seeds
    of every dictionary smaller than the largest (None: all), a subset of ``seeds``; for the same reason its SAEs
    are the ones the full grid would train.
    """
    seeds = list(seeds)
    small = [s for s in seeds if trend_seeds is None or s in set(trend_seeds)]
    k = seeds_per_program or len(seeds)

    def chunks_of(d: int) -> list[list[int]]:
        ss = seeds if d == max(dict_sizes) else small
        return [ss[i : i + k] for i in range(0, len(ss), k)]

    bar = None
    if progress is True:
        total = spec.steps * sum(len(chunks_of(d)) for d in dict_sizes)
        bar = tqdm(total=total, desc="MMCS sweep (steps)", mininterval=2.0)
        progress = lambda _step: bar.update(1)  # noqa: E731
    x_eval = {c: DataStream(world, [c], [0], 1).eval_batch(c, n_eval) for c in conditions}
    truth = {c: world.ground_truth(c) for c in conditions}
    frames = []
    try:
        for d, chunk in ((size, c) for size in dict_sizes for c in chunks_of(size)):
            g = grid(conditions, chunk, l1_values)
            stream = DataStream(world, list(conditions), chunk, spec.batch)
            t0 = time.perf_counter()
            saes = train_batched(
                stream,
                g["group"].tolist(),
                g["l1"].tolist(),
                g["seed"].tolist(),
                int(d),
                spec,
                progress=progress or None,
                device=device,
            )
            train_s = time.perf_counter() - t0
            metrics = evaluate(saes, [x_eval[c] for c in g["condition"]], [truth[c] for c in g["condition"]])
            g = g.drop(columns="group").assign(dict_size=int(d), train_s=round(train_s, 2))
            frames.append(pd.concat([g.reset_index(drop=True), metrics], axis=1))
    finally:
        if bar is not None:
            bar.close()
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["dict_size", "condition", "seed", "l1"], key=_condition_order, kind="stable")
    return df[[*SWEEP_COLUMNS, "train_s"]].reset_index(drop=True)


def _condition_order(col: pd.Series) -> pd.Series:
    if col.name != "condition":
        return col
    order = {c: i for i, c in enumerate(("raw", "mlp", "gaussian"))}
    return col.map(lambda c: order.get(c, len(order)))


def summarize(df: pd.DataFrame, drop: float = 0.05) -> pd.DataFrame:
    """Best MMCS over the L1 grid per (condition, dict_size) (mean over seeds first) and where it sits.

    ``zone`` is True when the best point lies strictly inside the grid and MMCS at both grid ends is at least
    ``drop`` below it (the curve rises and falls: a Goldilocks zone rather than a plateau or a monotone curve).
    """
    mean = df.groupby(["condition", "dict_size", "l1"], as_index=False)["mmcs"].mean()
    rows = []
    for (c, d), sub in mean.groupby(["condition", "dict_size"]):
        sub = sub.sort_values("l1")
        best = sub.loc[sub["mmcs"].idxmax()]
        rows.append(
            {
                "condition": c,
                "dict_size": int(d),
                "best_mmcs": float(best["mmcs"]),
                "best_l1": float(best["l1"]),
                "mmcs_at_min_l1": float(sub["mmcs"].iloc[0]),
                "mmcs_at_max_l1": float(sub["mmcs"].iloc[-1]),
            }
        )
        r = rows[-1]
        r["zone"] = bool(r["mmcs_at_min_l1"] <= r["best_mmcs"] - drop and r["mmcs_at_max_l1"] <= r["best_mmcs"] - drop)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Notebook 02 glue: a cached sweep from a resolved config, and the figure
# --------------------------------------------------------------------------------------------------------------
_WORLD_KEYS = ("n_features", "d_model", "mean_active", "decay", "mlp_ratio", "world_seed")
_SWEEP_KEYS = (
    *_WORLD_KEYS,
    "conditions",
    "dict_sizes",
    "l1_values",
    "seeds",
    "trend_seeds",
    "steps",
    "lr",
    "adam_beta2",
    "batch",
    "decay_frac",
    "n_eval",
    "device",
)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily use ``n`` intra-op threads (None or 0: leave torch's setting, one per core).

    On a small shared CPU, OpenMP threads that wait for each other at every op cost far more than they gain for
    small matrices (the smoke sweep runs ~10x faster on one thread when other processes load the cores), so the
    smoke profile and the tests ask for 1. The choice is explicit: guessing from the load average misjudged a
    machine that had just finished other work (the 1-minute average lags).
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def sweep_from_config(cfg, path=None, force: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run (or reuse) the sweep a notebook-02 config describes; returns (table, manifest).

    The result is a ``store.cached_artifact`` folder keyed by the sweep parameters and the source of this module
    and ``synthetic``: a rerun with the same parameters and code reads ``sweep.csv`` instead of training.
    """
    params = {k: cfg[k] for k in _SWEEP_KEYS}
    params["device"] = resolve_device(params["device"])
    path = path or mmcs_sweep_dir(cfg.profile)

    def build(tmp):
        world = SparseFeatureWorld(SyntheticSpec(**{k: cfg[k] for k in _WORLD_KEYS}))
        spec = TrainSpec(
            steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, decay_frac=cfg.decay_frac, betas=(0.9, cfg.adam_beta2)
        )
        t0 = time.perf_counter()
        with torch_threads(cfg.threads):
            threads = torch.get_num_threads()
            df = run_sweep(
                world,
                cfg.conditions,
                cfg.dict_sizes,
                cfg.l1_values,
                cfg.seeds,
                spec,
                n_eval=cfg.n_eval,
                device=params["device"],
                progress=True,
                seeds_per_program=cfg.seeds_per_program or None,
                trend_seeds=cfg.trend_seeds,
            )
        df.to_csv(tmp / "sweep.csv", index=False)
        return {"sweep_wall_s": round(time.perf_counter() - t0, 1), "torch_threads": threads}

    out = store.cached_artifact(
        path, params, build, code=(sys.modules[__name__], synthetic, sparsity), force=force or not cfg.use_cache
    )
    return pd.read_csv(out / "sweep.csv"), store.load_manifest(out)
