"""Why the default run's random variants differ from the trained model (notebook 06): one factor at a time.

In the default run (SmolLM2-135M, notebook 03) the re-randomized variants' SAEs reconstruct far worse than the
trained model's from layer 4 on, unlike the paper's Pythia. This module varies one factor at a time away from
notebook 03's setting and measures what changes:

* ``width``: the SAE's expansion R (the paper: 64; the default: 4);
* ``norm_gains``: a re-randomized variant's norm gains redrawn (the default, as the authors' code) or kept trained;
* ``output_scale``: a re-randomized variant's output projections redrawn with their std scaled (by depth, as
  wang_init does);
* ``embedding_scale``: a variant's token embedding multiplied by a factor (a re-randomized residual stream grows
  ~20x with depth, so the embedding's share of it shrinks);
* ``train_tokens``: the SAE's training budget (optional);
* ``architecture``: not a sweep of the SmolLM2 caches but a second model on the same windows, a GPT-NeoX of
  Pythia-70m's shape at initialization (:mod:`rsae_utils.subject.neox_init`; ``architecture_cells``).

Each (variant, options) pair is an activation cache: notebook 03's own for the default options (never harvested
here), else one harvested once on the same token windows (:mod:`.caches`, with the residual-stream statistics).
SAEs are trained with the fast TopK trainer (:mod:`rsae_utils.sae.topk`, the
paper's sparsify rule) on the cached training split and measured on the held-out split with
:func:`rsae_utils.sae.metrics.reconstruction_metrics` plus the critique's per-latent token statistics. Only the
metrics are stored (``metrics.json`` per SAE, through the artifact store), not the weights: an R = 64 SAE of
SmolLM2 is ~170 MB.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsae_utils import paths
from rsae_utils.sae.cache import ActivationCache, token_mask
from rsae_utils.sae.metrics import reconstruction_metrics, training_directions
from rsae_utils.sae.spec import FAST, SAESpec, paper_lr, sae_name
from rsae_utils.sae.topk import to_sae_lens
from rsae_utils.sae.train import RECORD, load_sae
from rsae_utils.sae.trainers import fit_topk, trainer_for
from rsae_utils.store import cached_artifact, content_hash, read_json, verify_artifact, write_json
from rsae_utils.studies.why.detectors import direction_sets, token_detectors
from rsae_utils.subject.rerandomize import options_tag
from rsae_utils.tokenstats import token_entropy, top_token_share

CODE = (
    "rsae_utils.studies.why.sweep",
    "rsae_utils.studies.why.residual_stats",
    "rsae_utils.sae.topk",
    "rsae_utils.sae.trainers",
    "rsae_utils.sae.metrics",
    "rsae_utils.studies.why.detectors",
)
FACTORS = ("width", "norm_gains", "embedding_scale", "output_scale", "train_tokens", "architecture")
NEOX = "neox_init"  # the variant name of the Pythia-shaped GPT-NeoX at initialization in tables
SINGLE_TOKEN = 0.9  # a latent is single-token when one token id holds this share of its top activations' mass


def source_name(variant: str, options: Mapping[str, Any] | None = None) -> str:
    """The name of a (variant, options) cache in tables: the variant, plus "+tag" when it has options."""
    tag = options_tag(dict(options or {}))
    return f"{variant}+{tag}" if tag else variant


# --------------------------------------------------------------------------------------------------------------
# Caches: notebook 03's, and variants made with other options on the same windows
# --------------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------------
# SAEs: train one, measure it, keep the numbers
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSpec(SAESpec):
    """One SAE of the sweep: notebook 03's :class:`SAESpec` (read positionally as R, k, training tokens, batch,
    learning rate, seed of init and batch order), a TopK SAE of the fast trainer with notebook 03's dead-latent
    window."""

    trainer: str = FAST

    @property
    def name(self) -> str:
        """The spec's part of the SAE's folder name (:func:`sae_name`, style "sweep"; the layer goes before it)."""
        return sae_name(None, self, style="sweep")


def width_lr(lr: float, base_expansion: int, expansion: int) -> float:
    """``lr`` chosen at the base width carried to another width by the paper's rule (:func:`paper_lr`: 1 /
    sqrt(d_sae); d_model is the same, so widths scale as R), rounded to 6 significant digits."""
    return float(f"{paper_lr(expansion, lr, base_expansion):.6g}")


@torch.no_grad()
def latent_token_stats(
    encode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tokens: torch.Tensor,
    top_n: int = 20,
    chunk: int = 512,
) -> dict[str, float]:
    """Per-latent statistics of a dense ``encode`` on rows ``x`` (N, d) with token ids ``tokens`` (N,), taken in
    chunks (a wide SAE's dense codes for all rows would not fit): dead fraction, and over live latents the median
    token entropy of the ``top_n`` strongest activations (nats) and the share of single-token latents (one token id
    holds >= 0.9 of that mass)."""
    vals = idx = fired = None
    for lo in range(0, len(x), chunk):
        z = encode(x[lo : lo + chunk]).float()
        hit = (z > 0).any(0)
        fired = hit if fired is None else fired | hit
        pos = torch.arange(lo, lo + len(z)).unsqueeze(1).expand_as(z)
        cv, ci = (z, pos) if vals is None else (torch.cat([vals, z]), torch.cat([idx, pos]))
        n = min(int(top_n), len(cv))
        vals, j = cv.topk(n, dim=0)
        idx = ci.gather(0, j)
    if fired is None:
        return {"dead_fraction_tok": float("nan"), "token_entropy": float("nan"), "single_token_share": float("nan")}
    live = fired.nonzero().squeeze(1).tolist()
    ids, v = tokens[idx].numpy(), vals.clamp(min=0).numpy()
    ent = [token_entropy(ids[:, j], v[:, j]) for j in live]
    top = [top_token_share(ids[:, j], v[:, j]) for j in live]
    return {
        "dead_fraction_tok": 1.0 - len(live) / z.shape[1],
        "token_entropy": float(np.nanmedian(ent)) if live else float("nan"),
        "single_token_share": float(np.mean(np.asarray(top) >= SINGLE_TOKEN)) if live else float("nan"),
    }


# What else must agree for notebook 03's SAE to be the sweep's (the trainer aside; the dead-latent window follows
# from width, k, batch and dead_feature_window).
SAME_SAE_FIELDS = (
    "dead_feature_window",
    "matmul_dtype",
    "architecture",
    "expansion",
    "k",
    "n_tokens",
    "batch_size",
    "lr",
    "seed",
    "lr_warm_up_steps",
    "data_seed",
)


def nb03_sae(nb03: Any, cell: Cell, spec: SweepSpec) -> Path | None:
    """Notebook 03's own SAE folder when ``cell`` asks for exactly that SAE, else None.

    That is: the variant's own cache (no options), a variant and layer notebook 03 trained, and ``spec`` equal to
    notebook 03's TopK spec for its fast trainer (same width, k, tokens, batch, learning rate, seed, dead-latent
    threshold, no warm-up, one seed for init and batch order). Both notebooks then run ``fit_topk`` on the same
    batches from the same start, so the weights are the same (tests/studies/test_why.py) and the cell reads
    notebook 03's SAE instead of training it again. None also when that folder is missing or damaged (the cell
    trains)."""
    s, trainer = nb03.spec, trainer_for(spec)
    same = (
        cell.source == cell.variant
        and cell.variant in nb03.cfg.variants
        and cell.layer in nb03.cfg.layers
        and trainer_for(s) is trainer
        and all(getattr(s, f) == getattr(spec, f) for f in SAME_SAE_FIELDS)
    )
    if not same:
        return None
    path = nb03.sae_dir(cell.variant, cell.layer)
    return path if verify_artifact(path)[0] else None


_ONCE: dict[tuple, Any] = {}  # per-process: what every SAE of one (cache, layer) reads from its training split


def _once(key: tuple, make: Callable[[], Any]) -> Any:
    if key not in _ONCE:
        _ONCE[key] = make()
    return _ONCE[key]


def _split_refs(
    cache: ActivationCache, layer: int, exclude_tokens: Sequence[int], n_top_pcs: int, detectors: bool
) -> tuple[torch.Tensor | None, tuple | None]:
    """(top principal directions, token-direction sets) of the cache's training split at ``layer``, each None when
    not asked for: the same for every SAE of one (cache, layer), so made once per process."""
    keep_of = partial(token_mask, exclude_tokens=exclude_tokens)
    at = (cache.manifest_hash(), int(layer), tuple(int(t) for t in exclude_tokens))
    dirs = (
        _once((*at, "pcs", n_top_pcs), lambda: training_directions(cache, layer, keep_of, n_top_pcs))
        if n_top_pcs
        else None
    )

    def sets() -> tuple:
        toks = cache.tokens("train")
        return direction_sets(cache.acts(layer, "train"), toks, keep_of(toks))

    return dirs, (_once((*at, "tokens"), sets) if detectors else None)


def train_measure(
    cache: ActivationCache,
    layer: int,
    spec: SweepSpec,
    out_dir: Path,
    exclude_tokens: Sequence[int] = (),
    top_n: int = 20,
    test_windows: int | None = None,
    trained: Path | None = None,
    n_top_pcs: int = 0,
    detectors: bool = False,
) -> dict[str, Any]:
    """Train the TopK SAE of ``spec`` on ``cache``'s training split at ``layer`` and return its held-out metrics
    (explained variance, cosine, L0, dead fraction, token entropy, single-token share, training FVU and speed) on
    the first ``test_windows`` held-out windows (None or 0: all); cached: a rerun with the same cache, layer, spec
    and windows reads the stored numbers. ``train_tokens_seen`` is what the trainer consumed: ``n_tokens`` rounded
    down to whole batches (cycling over the cached split when it holds fewer). ``trained``: the folder of this very
    SAE already trained by notebook 03 (:func:`nb03_sae`), read instead of training; keyed by its contents.
    ``n_top_pcs`` > 0 adds ``ev_top_pcs_out`` (the EV without the training split's top principal directions);
    ``detectors`` adds the token-detector shares (:func:`rsae_utils.studies.why.detectors.token_detectors`, token
    directions from the training split)."""
    params = {
        "cache": cache.manifest_hash(),
        "layer": int(layer),
        "spec": asdict(spec),
        "exclude": list(exclude_tokens),
        "top_n": int(top_n),
    }
    if test_windows:  # only when capped, so a run without a cap keeps its stored numbers
        params["test_windows"] = int(test_windows)
    if trained is not None:
        params["nb03_sae"] = content_hash(trained)
    if n_top_pcs or detectors:
        params.update(n_top_pcs=int(n_top_pcs), detectors=bool(detectors))

    def build(tmp: Path) -> None:
        d = cache.d_model
        if trained is not None:
            sae, rec0 = load_sae(trained), read_json(Path(trained) / RECORD)
            res = SimpleNamespace(
                curve=rec0.get("loss_curve") or [],
                seconds=float(rec0["runtime_s"]),
                tokens=int(rec0["tokens_trained"]),
                steps=int(rec0["steps"]),
                d_sae=int(rec0["d_sae"]),
            )
        else:
            res = fit_topk(cache, layer, replace(spec, exclude_tokens=tuple(exclude_tokens)))
            sae = to_sae_lens(res)
        n_test = int(test_windows) if test_windows else None
        toks = cache.tokens("test")[:n_test]
        mask = token_mask(toks, exclude_tokens)
        acts = cache.acts(layer, "test")[:n_test]
        dirs, sets = _split_refs(cache, layer, exclude_tokens, int(n_top_pcs), detectors)
        rec = reconstruction_metrics(sae, acts, batch_tokens=512, mask=mask, dirs=dirs)
        if sets is not None:
            rec.update(token_detectors(sae.W_dec.detach(), sets=sets))
        x = acts.reshape(-1, d)[mask.reshape(-1)]
        rec.update(latent_token_stats(sae.encode, x, toks.reshape(-1)[mask.reshape(-1)], top_n))
        rec.update(
            {
                "train_fvu_end": res.curve[-1]["fvu"] if res.curve else float("nan"),
                "train_s": res.seconds,
                "train_tokens_per_s": res.tokens / max(res.seconds, 1e-9),
                "steps": res.steps,
                "train_tokens_seen": res.tokens,
                "test_tokens": int(mask.sum()),
                "d_sae": res.d_sae,
            }
        )
        write_json(tmp / "metrics.json", rec)

    path = cached_artifact(out_dir, params, build, code=CODE)
    return read_json(path / "metrics.json")


# --------------------------------------------------------------------------------------------------------------
# The one-factor-at-a-time grid
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One point of a factor sweep: the factor, its value, which cache (variant + options), layer, R and tokens;
    ``seed``: the SAE's seed when not the notebook's own (an extra seed of :func:`with_seeds`)."""

    factor: str
    value: Any
    variant: str
    options: tuple
    layer: int
    expansion: int
    n_tokens: int
    seed: int | None = None

    @property
    def source(self) -> str:
        return source_name(self.variant, dict(self.options))


def sweep_cells(
    variants: Sequence[str],
    factor_variants: Sequence[str],
    layers: Sequence[int],
    expansions: Sequence[int],
    base_expansion: int,
    embedding_scales: Sequence[float],
    norm_gains: bool,
    token_budgets: Sequence[int],
    base_tokens: int,
    wide_layers: Sequence[int] = (),
    wide_variants: Sequence[str] = (),
    output_scales: Sequence[float] = (),
) -> list[Cell]:
    """Every cell: width for ``variants``; norm gains and embedding scale for ``factor_variants`` (each sweep holds
    the baseline, notebook 03's options at the base width); training tokens for ``variants`` when more than one
    budget is given. A factor with a single value is skipped. Widths above ``base_expansion`` (the costly SAEs)
    are trained only at ``wide_layers`` for ``wide_variants`` (empty: every layer / variant)."""
    cells: list[Cell] = []
    for layer in layers:
        for v in variants:
            wide_ok = (not wide_layers or layer in wide_layers) and (not wide_variants or v in wide_variants)
            cells += [
                Cell("width", int(r), v, (), layer, int(r), base_tokens)
                for r in expansions
                if int(r) <= base_expansion or wide_ok
            ]
            if len(token_budgets) > 1:
                cells += [Cell("train_tokens", int(t), v, (), layer, base_expansion, int(t)) for t in token_budgets]
        for v in factor_variants:
            if norm_gains:
                cells.append(Cell("norm_gains", "redrawn", v, (), layer, base_expansion, base_tokens))
                cells.append(
                    Cell(
                        "norm_gains", "trained", v, (("rerandomize_norms", False),), layer, base_expansion, base_tokens
                    )
                )
            if len(embedding_scales) > 1:
                for s in embedding_scales:
                    opts = () if float(s) == 1.0 else (("embedding_scale", float(s)),)
                    cells.append(Cell("embedding_scale", float(s), v, opts, layer, base_expansion, base_tokens))
            if len(output_scales) > 1:
                for s in output_scales:
                    opts = () if float(s) == 1.0 else (("output_scale", float(s)),)
                    cells.append(Cell("output_scale", float(s), v, opts, layer, base_expansion, base_tokens))
    return cells


def with_seeds(
    cells: Sequence[Cell], seeds: Sequence[int], layers: Sequence[int] | None = None, expansion: int | None = None
) -> list[Cell]:
    """``cells`` followed by a copy of each one at every seed in ``seeds``, for the cells at ``layers`` (None: all)
    and width ``expansion`` (None: all); a cell listed twice (a baseline shared by sweeps) is copied once."""
    picked = [
        c
        for c in dict.fromkeys(cells)
        if (layers is None or c.layer in set(layers)) and (expansion is None or c.expansion == expansion)
    ]
    return list(cells) + [replace(c, seed=int(s)) for s in seeds for c in picked]


def architecture_cells(layers: Sequence[int], base_expansion: int, base_tokens: int) -> list[Cell]:
    """The SAEs of the second architecture (variant ``NEOX``): one per layer, at the base width and budget."""
    return [Cell("architecture", "gpt-neox", NEOX, (), int(x), int(base_expansion), int(base_tokens)) for x in layers]


def option_sets(cells: Iterable[Cell]) -> list[tuple[str, tuple]]:
    """The distinct (variant, options) caches the cells need, in first-seen order."""
    return list(dict.fromkeys((c.variant, c.options) for c in cells))


def run_cells(
    cells: Sequence[Cell],
    caches: Mapping[str, ActivationCache],
    spec_for: Callable[[Cell], SweepSpec],
    sae_dir: Callable[[Cell, SweepSpec], Path],
    exclude_tokens: Sequence[int] = (),
    top_n: int = 20,
    log: Callable[[str], None] | None = None,
    test_windows: int | None = None,
    reuse: Callable[[Cell, SweepSpec], Path | None] | None = None,
    measure: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Train and measure every cell's SAE (a run shared by several cells, such as the baseline, runs once), its
    metrics on the first ``test_windows`` held-out windows (None or 0: all); one row per cell. ``reuse(cell,
    spec)``: the folder of that SAE when it is already trained (:func:`nb03_sae`), else None. ``measure``: extra
    keyword arguments of :func:`train_measure` (``n_top_pcs``, ``detectors``)."""
    rows, done = [], {}
    for c in cells:
        spec = spec_for(c)
        key = (c.source, c.layer, spec)
        if key not in done:
            t0 = time.perf_counter()
            done[key] = train_measure(
                caches[c.source],
                c.layer,
                spec,
                sae_dir(c, spec),
                exclude_tokens,
                top_n,
                test_windows,
                trained=reuse(c, spec) if reuse else None,
                **(measure or {}),
            )
            if log:
                log(
                    f"{c.source} L{c.layer} {spec.name}: EV {done[key]['explained_variance']:.3f} "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
        rows.append(
            {
                "factor": c.factor,
                "value": c.value,
                "variant": c.variant,
                "source": c.source,
                "layer": c.layer,
                "R": spec.expansion,
                "k": spec.k,
                "train_tokens": spec.n_tokens,
                "lr": spec.lr,
                "seed": spec.seed,
                **done[key],
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Notebook 06's sweep: one call, every folder from paths
# --------------------------------------------------------------------------------------------------------------
def sweep_spec(cfg: Any, matmul_dtype: str, cell: Cell) -> SweepSpec:
    """The TopK SAE of ``cell`` under notebook 06's ``cfg``: k, batch and seed shared, the learning rate scaled to
    the cell's width (:func:`width_lr`), notebook 03's encoder-product dtype (so a cell that asks for notebook
    03's SAE can read it); the seed is the cell's own when it has one, else ``cfg.seed``."""
    lr = width_lr(cfg.lr, cfg.base_expansion, cell.expansion)
    seed = cfg.seed if cell.seed is None else cell.seed
    return SweepSpec(cell.expansion, cfg.k, cell.n_tokens, cfg.batch_size, lr, seed, matmul_dtype=matmul_dtype)


def sweep_sae_dir(nb03: Any, cell: Cell, spec: SweepSpec) -> Path:
    """Where the metrics of ``cell``'s SAE go (``paths.why_sweep_sae_dir``, beside notebook 03's model)."""
    m3 = nb03.cfg
    return paths.why_sweep_sae_dir(nb03.profile, m3.model, m3.revision, cell.source, cell.layer, spec.name)


def run_sweep(
    nb03: Any, cfg: Any, cells: Sequence[Cell], caches: Mapping[str, ActivationCache], reuse_nb03: bool = True
) -> pd.DataFrame:
    """:func:`run_cells` under notebook 06's ``cfg``, progress printed. ``reuse_nb03``: a cell that asks for exactly
    notebook 03's SAE (its variant, layer and spec) reads it (:func:`nb03_sae`): the same trainer on the same
    batches from the same seed gives the same weights, so it is not trained twice."""
    return run_cells(
        cells,
        caches,
        partial(sweep_spec, cfg, nb03.spec.matmul_dtype),
        partial(sweep_sae_dir, nb03),
        nb03.exclude_tokens,
        cfg.top_n,
        log=print,
        test_windows=cfg.test_windows,
        reuse=partial(nb03_sae, nb03) if reuse_nb03 else None,
        measure={"n_top_pcs": int(cfg.n_top_pcs), "detectors": bool(cfg.detectors)},
    )
