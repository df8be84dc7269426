"""Notebook 06's caches, and what is measured on them directly: notebook 03's variants remade with other options
and the Pythia-shaped GPT-NeoX at initialization, harvested once on notebook 03's token windows, and their
residual-stream statistics.

Each (variant, options) pair is an activation cache: notebook 03's own for the default options (opened, never
harvested here: ``sae.cache.require_caches``), else one harvested once on exactly the same windows
(:func:`option_cache`; :func:`option_caches` makes every one the sweep's cells need). The second architecture,
a GPT-NeoX of Pythia-70m's shape at initialization (:mod:`rsae_utils.subject.neox_init`), gets its cache the same
way (:func:`neox_cache`, :func:`neox_init_cache`). Where each goes: ``paths.why_option_cache_dir``,
``paths.why_neox_cache_dir``, ``paths.why_stats_dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rsae_utils import paths
from rsae_utils.errors import CacheError
from rsae_utils.sae.cache import DEFAULT_SHARD_WINDOWS, ActivationCache, cache_key, open_cache, token_mask
from rsae_utils.sae.harvest import harvest
from rsae_utils.store import cached_artifact
from rsae_utils.studies.why.residual_stats import residual_stats
from rsae_utils.studies.why.sweep import NEOX, Cell, option_sets, source_name
from rsae_utils.subject.neox_init import NEOX_NAME, neox_at_init

CODE = ("rsae_utils.studies.why.caches", "rsae_utils.studies.why.residual_stats")
NEOX_LABEL = "Pythia-shaped GPT-NeoX at initialization"  # its label in figures and in the answer


# --------------------------------------------------------------------------------------------------------------
# Variants made with other options, and the second architecture, on notebook 03's windows
# --------------------------------------------------------------------------------------------------------------
def base_windows(base: ActivationCache, test_windows: int | None = None) -> dict[str, torch.Tensor]:
    """``base``'s token windows by split; the test split cut to its first ``test_windows`` (None or 0: all of it),
    which is all the SAE metrics read when they are capped (``train_measure``)."""
    out = {s: base.tokens(s) for s in base.manifest["n_windows"]}
    if test_windows and "test" in out:
        out["test"] = out["test"][: int(test_windows)]
    return out


def harvest_once(
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
    return harvest_once(
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
    return harvest_once(meta, layers, windows, base.manifest["dtype"], out_dir, make_model, harvest_batch)


# --------------------------------------------------------------------------------------------------------------
# Residual-stream statistics
# --------------------------------------------------------------------------------------------------------------
def stats_table(
    caches: Mapping[str, ActivationCache],
    layers: Mapping[str, Sequence[int]],
    stats_dir: Callable[[str], Path],
    exclude_tokens: Sequence[int] = (),
    split: str = "train",
) -> pd.DataFrame:
    """:func:`residual_stats` of every (source, layer), boundary tokens left out; one cached artifact per source, in
    ``stats_dir(source)``."""
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

        path = cached_artifact(stats_dir(name), params, build, code=CODE)
        frames.append(pd.read_csv(path / "stats.csv"))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------------------
# Notebook 06's steps: one call each, every folder from paths
# --------------------------------------------------------------------------------------------------------------
def option_caches(
    nb03: Any, cfg: Any, cells: Sequence[Cell], base: Mapping[str, ActivationCache]
) -> dict[str, ActivationCache]:
    """``base`` (notebook 03's caches) plus, for every (variant, options) with options that ``cells`` need, the
    variant remade with them (``nb03.variant_model``) and harvested once at ``cfg.layers`` on ``base``'s windows
    (test split cut to ``cfg.test_windows``); notebook 03's model is released afterwards."""
    m3 = nb03.cfg
    caches = dict(base)
    for variant, opts in option_sets(cells):
        if opts:
            name = source_name(variant, dict(opts))
            caches[name] = option_cache(
                base[variant],
                dict(opts),
                cfg.layers,
                paths.why_option_cache_dir(nb03.profile, m3.model, m3.revision, name),
                make_model=partial(nb03.variant_model, variant, dict(opts)),
                harvest_batch=m3.harvest_batch,
                test_windows=cfg.test_windows,
            )
    nb03.release_model()
    return caches


def neox_init_cache(nb03: Any, cfg: Any, base: ActivationCache) -> ActivationCache:
    """The Pythia-shaped GPT-NeoX at initialization (``cfg.neox_seed``, ``cfg.neox_init``, notebook 03's
    vocabulary and context) harvested at ``cfg.neox_layers`` on ``base``'s windows (the trained model's cache)."""
    m3 = nb03.cfg

    def make_model() -> tuple[Any, dict]:
        # the tokenizer is loaded only when the cache has to be made
        return neox_at_init(len(nb03.tokenizer), cfg.neox_seed, cfg.neox_init, n_ctx=m3.ctx)

    return neox_cache(
        base,
        cfg.neox_layers,
        paths.why_neox_cache_dir(nb03.profile, NEOX),
        make_model,
        seed=cfg.neox_seed,
        init=cfg.neox_init,
        harvest_batch=m3.harvest_batch,
        test_windows=cfg.test_windows,
    )


def residual_table(nb03: Any, cfg: Any, caches: Mapping[str, ActivationCache]) -> pd.DataFrame:
    """:func:`stats_table` of every cache at every layer it holds (option caches hold just ``cfg.layers``) on the
    ``cfg.stats_split`` split, notebook 03's boundary tokens left out."""
    m3 = nb03.cfg
    return stats_table(
        caches,
        {name: c.layers for name, c in caches.items()},
        partial(paths.why_stats_dir, nb03.profile, m3.model, m3.revision),
        nb03.exclude_tokens,
        split=cfg.stats_split,
    )
