"""Why the default run's random variants differ from the trained model (notebook 06): one factor at a time.

In the default run (SmolLM2-135M, notebook 03) the re-randomized variants' SAEs reconstruct far worse than the
trained model's from layer 4 on, unlike the paper's Pythia. This module varies one factor at a time away from
notebook 03's setting and measures what changes:

* ``width``: the SAE's expansion R (the paper: 64; the default: 4);
* ``norm_gains``: a re-randomized variant's norm gains redrawn (the default, as the authors' code) or kept trained;
* ``embedding_scale``: a variant's token embedding multiplied by a factor (a re-randomized residual stream grows
  ~20x with depth, so the embedding's share of it shrinks);
* ``train_tokens``: the SAE's training budget (optional);
* ``architecture``: not a sweep of the SmolLM2 caches but a second model on the same windows, a GPT-NeoX of
  Pythia-70m's shape at initialization (:mod:`rsae_utils.subject.neox_init`; ``neox_cache``, ``architecture_cells``).

Each (variant, options) pair is an activation cache: notebook 03's own for the default options (never harvested
here), else one harvested once on the same token windows (``option_cache``). Residual-stream statistics come from
:mod:`.residual_stats`; SAEs are trained with the fast TopK trainer (:mod:`rsae_utils.sae.topk`, the
paper's sparsify rule) on the cached training split and measured on the held-out split with
:func:`rsae_utils.sae.metrics.reconstruction_metrics` plus the critique's per-latent token statistics. Only the
metrics are stored (``metrics.json`` per SAE, through the artifact store), not the weights: an R = 64 SAE of
SmolLM2 is ~170 MB.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsae_utils.autointerp.stats import token_entropy, top_token_share
from rsae_utils.errors import CacheError, StageError
from rsae_utils.sae.cache import DEFAULT_SHARD_WINDOWS, ActivationCache, cache_key, open_cache, token_mask
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.sae.topk import to_sae_lens, train_topk
from rsae_utils.sae.train import RECORD, load_sae
from rsae_utils.store import cached_artifact, content_hash, read_json, verify_artifact, write_json
from rsae_utils.studies.why.residual_stats import residual_stats
from rsae_utils.subject.neox_init import NEOX_NAME
from rsae_utils.subject.rerandomize import options_tag

CODE = (
    "rsae_utils.studies.why.sweep",
    "rsae_utils.studies.why.residual_stats",
    "rsae_utils.sae.topk",
    "rsae_utils.sae.metrics",
)
FACTORS = ("width", "norm_gains", "embedding_scale", "train_tokens", "architecture")
NEOX = "neox_init"  # the variant name of the Pythia-shaped GPT-NeoX at initialization in tables
SINGLE_TOKEN = 0.9  # a latent is single-token when one token id holds this share of its top activations' mass


def source_name(variant: str, options: Mapping[str, Any] | None = None) -> str:
    """The name of a (variant, options) cache in tables: the variant, plus "+tag" when it has options."""
    tag = options_tag(dict(options or {}))
    return f"{variant}+{tag}" if tag else variant


# --------------------------------------------------------------------------------------------------------------
# Caches: notebook 03's, and variants made with other options on the same windows
# --------------------------------------------------------------------------------------------------------------
def require_base_caches(pipeline: Any, variants: Sequence[str], layers: Sequence[int], profile: str) -> dict:
    """Notebook 03's caches of ``variants`` (opened, never harvested), each with ``layers``, a training split, and
    made without variant options; StageError naming notebook 03 otherwise."""
    out = {}
    for v in variants:
        try:
            cache = pipeline.cache(v)
        except StageError as err:
            raise StageError(
                f"notebook 06 reads notebook 03's activation caches: run notebook 03_sae_training "
                f"(profile {profile!r}) first; {err}"
            ) from None
        missing = [x for x in layers if x not in cache.layers]
        if missing or "train" not in cache.manifest["n_windows"]:
            raise StageError(
                f"the cache of {v!r} ({cache.root}) has layers {cache.layers} and splits "
                f"{list(cache.manifest['n_windows'])}; notebook 06 needs layers {list(layers)} with a cached "
                f"training split: run notebook 03_sae_training (profile {profile!r}) with them and train_from='cache'"
            )
        if cache.manifest.get("variant_options"):
            raise StageError(
                f"the cache of {v!r} was made with variant options {cache.manifest['variant_options']}; "
                f"notebook 06's baseline is notebook 03 with rerandomize_norms=True, embedding_scale=1.0"
            )
        out[v] = cache
    return out


def base_windows(base: ActivationCache, test_windows: int | None = None) -> dict[str, torch.Tensor]:
    """``base``'s token windows by split; the test split cut to its first ``test_windows`` (None or 0: all of it),
    which is all the SAE metrics read when they are capped (``train_measure``)."""
    out = {s: base.tokens(s) for s in base.manifest["n_windows"]}
    if test_windows and "test" in out:
        out["test"] = out["test"][: int(test_windows)]
    return out


def _harvest_once(
    meta: dict,
    layers: Sequence[int],
    windows: Mapping[str, torch.Tensor],
    dtype: str,
    out_dir: Path,
    make_model: Callable[[], tuple[Any, dict]],
    harvest_batch: int,
    forward: str | None = None,
    harvest_dtype: str = "float32",
) -> ActivationCache:
    # forward: the one harvest() will use (a wrong guess only costs a model load: harvest keys by the real one)
    key = cache_key(meta, layers, windows, dtype, DEFAULT_SHARD_WINDOWS, forward)
    try:
        done = open_cache(out_dir)
        if done.manifest.get("key") == key:
            return done
    except CacheError:
        pass
    model, record = make_model()
    return harvest(
        model,
        windows,
        layers,
        out_dir,
        {**meta, "variant_record": record},
        batch_size=int(harvest_batch),
        dtype=dtype,
        harvest_dtype=harvest_dtype,
    )


def option_cache(
    base: ActivationCache,
    options: Mapping[str, Any],
    layers: Sequence[int],
    out_dir: Path,
    make_model: Callable[[], tuple[Any, dict]],
    harvest_batch: int = 8,
    test_windows: int | None = None,
) -> ActivationCache:
    """The cache of ``base``'s variant made with ``options``, on exactly ``base``'s token windows (train, and the
    first ``test_windows`` of test), at ``layers``; harvested once (``make_model()`` is called only then) and
    reused while its key holds."""
    windows = base_windows(base, test_windows)
    keep = ("model", "revision", "variant", "seed", "corpus_sha256", "corpus_source", "window_seed")
    meta = {**{k: base.manifest.get(k) for k in keep}, "variant_options": dict(options)}
    # the base cache's forward and compute dtype, so option caches differ from it only by the options
    return _harvest_once(
        meta,
        layers,
        windows,
        base.manifest["dtype"],
        out_dir,
        make_model,
        harvest_batch,
        base.manifest.get("forward"),
        str(base.manifest.get("harvest_dtype", "float32")),
    )


def neox_cache(
    base: ActivationCache,
    layers: Sequence[int],
    out_dir: Path,
    make_model: Callable[[], tuple[Any, dict]],
    seed: int,
    init: str,
    harvest_batch: int = 8,
    test_windows: int | None = None,
) -> ActivationCache:
    """The cache of the Pythia-shaped GPT-NeoX at initialization (``make_model()``: its HookedTransformer and
    record) on ``base``'s windows, as :func:`option_cache`; recorded as variant ``NEOX``."""
    # the initializer goes in as a variant option: cache_key reads those, so another init makes another cache
    meta = {
        "model": NEOX_NAME,
        "revision": None,
        "variant": NEOX,
        "seed": int(seed),
        "variant_options": {"init": init},
        **{k: base.manifest.get(k) for k in ("corpus_sha256", "corpus_source", "window_seed")},
    }
    windows = base_windows(base, test_windows)
    return _harvest_once(meta, layers, windows, base.manifest["dtype"], out_dir, make_model, harvest_batch)


# --------------------------------------------------------------------------------------------------------------
# Residual-stream statistics
# --------------------------------------------------------------------------------------------------------------
def stats_table(
    caches: Mapping[str, ActivationCache],
    layers: Mapping[str, Sequence[int]],
    out_dir: Path,
    exclude_tokens: Sequence[int] = (),
    split: str = "train",
) -> pd.DataFrame:
    """:func:`residual_stats` of every (source, layer), boundary tokens left out; one cached artifact per source."""
    frames = []
    for name, cache in caches.items():
        params = {
            "cache": cache.manifest_hash(),
            "layers": sorted(int(x) for x in layers[name]),
            "exclude": list(exclude_tokens),
            "split": split,
        }

        def build(tmp: Path, cache: ActivationCache = cache, name: str = name) -> None:
            toks = cache.tokens(split)
            mask = token_mask(toks, exclude_tokens)
            rows = [
                {
                    "source": name,
                    "variant": cache.variant,
                    "layer": int(x),
                    **residual_stats(cache.acts(x, split), toks, mask),
                }
                for x in sorted(layers[name])
            ]
            pd.DataFrame(rows).to_csv(tmp / "stats.csv", index=False)

        path = cached_artifact(out_dir / name, params, build, code=CODE)
        frames.append(pd.read_csv(path / "stats.csv"))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------------------
# SAEs: train one, measure it, keep the numbers
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSpec:
    """One TopK SAE of the sweep: width R, k, training tokens, batch, learning rate, seed (init and batch order)."""

    expansion: int
    k: int
    n_tokens: int
    batch_size: int
    lr: float
    seed: int = 0

    @property
    def name(self) -> str:
        return f"R{self.expansion}-k{self.k}-t{self.n_tokens}-b{self.batch_size}-lr{self.lr:.3g}-s{self.seed}"


def width_lr(lr: float, base_expansion: int, expansion: int) -> float:
    """``lr`` at the base width, scaled by sparsify's rule (1 / sqrt(d_sae)) to another width."""
    return float(f"{lr * math.sqrt(base_expansion / expansion):.6g}")


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


def dead_threshold(spec: SweepSpec) -> int:
    """Tokens without firing after which the sweep's trainer counts a latent dead: an eighth of the run."""
    return max(spec.batch_size, spec.n_tokens // 8)


def nb03_sae(nb03: Any, cell: Cell, spec: SweepSpec) -> Path | None:
    """Notebook 03's own SAE folder when ``cell`` asks for exactly that SAE, else None.

    That is: the variant's own cache (no options), a variant and layer notebook 03 trained, and ``spec`` equal to
    notebook 03's TopK spec for its fast trainer (same width, k, tokens, batch, learning rate, seed, dead-latent
    threshold, no warm-up, one seed for init and batch order). Both notebooks then run ``train_topk`` on the same
    batches from the same start, so the weights are the same (tests/test_why.py) and the cell reads notebook 03's
    SAE instead of training it again. None also when that folder is missing or damaged (the cell trains)."""
    s = nb03.spec
    same = (
        cell.source == cell.variant
        and cell.variant in nb03.cfg.variants
        and cell.layer in nb03.cfg.layers
        and s.trainer == "fast"
        and s.architecture == "topk"
        and s.lr_warm_up_steps == 0
        and s.data_seed is None
        and (s.expansion, s.k, s.n_tokens, s.batch_size, s.lr, s.seed)
        == (spec.expansion, spec.k, spec.n_tokens, spec.batch_size, spec.lr, spec.seed)
        and s.dead_tokens() == dead_threshold(spec)
    )
    if not same:
        return None
    path = nb03.sae_dir(cell.variant, cell.layer)
    return path if verify_artifact(path)[0] else None


def train_measure(
    cache: ActivationCache,
    layer: int,
    spec: SweepSpec,
    out_dir: Path,
    exclude_tokens: Sequence[int] = (),
    top_n: int = 20,
    test_windows: int | None = None,
    trained: Path | None = None,
) -> dict[str, Any]:
    """Train the TopK SAE of ``spec`` on ``cache``'s training split at ``layer`` and return its held-out metrics
    (explained variance, cosine, L0, dead fraction, token entropy, single-token share, training FVU and speed) on
    the first ``test_windows`` held-out windows (None or 0: all); cached: a rerun with the same cache, layer, spec
    and windows reads the stored numbers. ``train_tokens_seen`` is what the trainer consumed: ``n_tokens`` rounded
    down to whole batches (cycling over the cached split when it holds fewer). ``trained``: the folder of this very
    SAE already trained by notebook 03 (:func:`nb03_sae`), read instead of training; keyed by its contents."""
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
            steps = max(1, spec.n_tokens // spec.batch_size)
            batches = cache.iter_batches(layer, spec.batch_size, seed=spec.seed, exclude_tokens=exclude_tokens)
            res = train_topk(
                itertools.islice(batches, steps),
                d,
                spec.expansion * d,
                spec.k,
                lr=spec.lr,
                seed=spec.seed,
                dead_tokens_threshold=dead_threshold(spec),
            )
            sae = to_sae_lens(res)
        n_test = int(test_windows) if test_windows else None
        toks = cache.tokens("test")[:n_test]
        mask = token_mask(toks, exclude_tokens)
        acts = cache.acts(layer, "test")[:n_test]
        rec = reconstruction_metrics(sae, acts, batch_tokens=512, mask=mask)
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
    """One point of a factor sweep: the factor, its value, which cache (variant + options), layer, R and tokens."""

    factor: str
    value: Any
    variant: str
    options: tuple
    layer: int
    expansion: int
    n_tokens: int

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
    return cells


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
) -> pd.DataFrame:
    """Train and measure every cell's SAE (a run shared by several cells, such as the baseline, runs once), its
    metrics on the first ``test_windows`` held-out windows (None or 0: all); one row per cell. ``reuse(cell,
    spec)``: the folder of that SAE when it is already trained (:func:`nb03_sae`), else None."""
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
                **done[key],
            }
        )
    return pd.DataFrame(rows)
