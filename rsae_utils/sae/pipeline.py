"""Notebook 03's stages, called one by one and in order: text -> caches -> SAEs -> metrics.

=========  ==========================================  ============================================================
stage      reads                                       writes (``rsae_utils.paths``)
=========  ==========================================  ============================================================
windows    the corpus, the model's tokenizer           nothing (windows are cheap to rebuild and keyed by content)
caches     windows, the model variant                  ``cache_dir``: activations of every layer, train + test
train      the cache (or, streamed, the variant)       ``sae_dir``: one sae-lens SAE + training record per layer
metrics    the test cache, the SAEs, the variant       ``metrics_dir``: held-out metrics of one variant
index      the SAEs and caches                         ``sae_index`` (what notebook 04 reads), ``metrics_table``
=========  ==========================================  ============================================================

Each stage reuses finished work (an artifact with the same key) and never starts an earlier one: asking for SAEs
whose cache was not built raises :class:`~rsae_utils.errors.StageError` naming the call to make first. The model is
loaded only when a stage has something to compute with it, and one variant is held in memory at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rsae_utils import paths
from rsae_utils.errors import CacheError, StageError
from rsae_utils.sae import metrics as metrics_mod
from rsae_utils.sae.cache import DEFAULT_SHARD_WINDOWS, TL_FORWARD, ActivationCache, cache_key, open_cache
from rsae_utils.sae.codes import load_codes
from rsae_utils.sae.harvest import harvest, planned_forward
from rsae_utils.sae.spec import SAE_LENS, SAESpec, sae_name
from rsae_utils.sae.topk import bf16_is_fast
from rsae_utils.sae.train import load_record, load_sae, train_sae, train_saes_streaming
from rsae_utils.store import cached_artifact, content_hash, load_table, save_table, verify_artifact
from rsae_utils.subject.corpus import Corpus, load_corpus
from rsae_utils.subject.models import LoadedModel, load_model, load_tokenizer
from rsae_utils.subject.rerandomize import make_variant, variant_options
from rsae_utils.subject.variants import labels_from_pairs, variant_label
from rsae_utils.subject.windows import boundary_token_id, tokenize_windows

__all__ = ["SAEPipeline", "resolved_dtype", "spec_from_config", "trained_runs", "run_labels"]


def spec_from_config(cfg: Any) -> SAESpec:
    """The SAE spec of a resolved notebook-03 Config (without the excluded tokens, which need the tokenizer)."""
    return SAESpec(
        architecture=cfg.architecture,
        trainer=getattr(cfg, "trainer", SAE_LENS),
        expansion=int(cfg.expansion),
        k=int(cfg.k),
        l1_coefficient=float(cfg.l1_coefficient),
        n_tokens=int(cfg.train_tokens),
        batch_size=int(cfg.batch_size),
        lr=float(cfg.lr),
        seed=int(cfg.sae_seed),
        matmul_dtype=resolved_dtype(getattr(cfg, "matmul_dtype", "float32"), cfg.device),
    )


def resolved_dtype(value: str, device: str) -> str:
    """A dtype choice with "auto" resolved on this machine ("bfloat16" where :func:`bf16_is_fast`, else
    "float32"): artifact keys then say which arithmetic made them."""
    if value == "auto":
        return "bfloat16" if bf16_is_fast(device) else "float32"
    return value


class SAEPipeline:
    """Notebook 03's run for one resolved Config. Call the stages in order: ``windows``, ``build_cache``,
    ``train``, ``measure`` (or ``measure_all``), then ``write_index``."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.profile = cfg.profile
        self.timings: dict[str, float] = {}
        self._loaded: LoadedModel | None = None
        self._tokenizer: Any = None
        self._corpus: Corpus | None = None
        self._test_corpus: Corpus | None = None
        self._windows: dict[str, torch.Tensor] | None = None
        self._held: tuple[Any, Any, dict | None] = (None, None, None)
        self._caches: dict[str, ActivationCache] = {}  # opened and verified once per run
        self._spec: SAESpec | None = None
        if cfg.torch_threads:
            # The smoke model's tiny matrices run fastest on one thread; None keeps torch's default (one per core).
            torch.set_num_threads(int(cfg.torch_threads))

    # --- where each stage writes (paths.py owns the layout) ---
    @property
    def harvest_dtype(self) -> str:
        """The caching forward's compute dtype, "auto" resolved on this machine (it enters the cache key): bfloat16
        only for the lean CPU forward on a CPU with native bfloat16."""
        value = str(getattr(self.cfg, "harvest_dtype", "float32"))
        if value == "auto" and planned_forward(self.cfg.model, self.cfg.device) == TL_FORWARD:
            return "float32"
        return resolved_dtype(value, self.cfg.device)

    def cache_dir(self, variant: str) -> Path:
        c = self.cfg
        return paths.cache_dir(self.profile, c.model, c.revision, variant, c.variant_seed)

    def sae_dir(self, variant: str, layer: int) -> Path:
        c = self.cfg
        return paths.sae_dir(self.profile, c.model, c.revision, variant, c.variant_seed, sae_name(layer, self.spec))

    def metrics_dir(self, variant: str) -> Path:
        c = self.cfg
        return paths.metrics_dir(self.profile, c.model, c.revision, variant, c.variant_seed)

    # --- resources: tokenizer, model, the variant held in memory ---
    def _tick(self, stage: str, t0: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - t0, 2)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._loaded.tokenizer if self._loaded is not None else load_tokenizer(self.cfg.model)
        return self._tokenizer

    @property
    def exclude_tokens(self) -> tuple[int, ...]:
        """Token ids left out of SAE training and metrics (the document-boundary token, an attention sink)."""
        return (boundary_token_id(self.tokenizer),) if self.cfg.exclude_boundary_token else ()

    @property
    def spec(self) -> SAESpec:
        if self._spec is None:
            self._spec = replace(spec_from_config(self.cfg), exclude_tokens=self.exclude_tokens)
        return self._spec

    @property
    def streaming(self) -> bool:
        """True when SAEs train on activations streamed from the model (the cache then holds the test split only)."""
        return self.cfg.train_from == "stream"

    def _model(self) -> LoadedModel:
        if self._loaded is None:
            t0 = time.perf_counter()
            self._loaded = load_model(self.cfg.model, device=self.cfg.device, revision=self.cfg.revision)
            self._tick("load_model", t0)
        return self._loaded

    @property
    def variant_options(self) -> dict[str, Any]:
        """The config's non-default variant options (``rerandomize_norms``, ``embedding_scale``; {} by default)."""
        return variant_options(getattr(self.cfg, "rerandomize_norms", True), getattr(self.cfg, "embedding_scale", 1.0))

    def loaded_model(self) -> LoadedModel:
        """The loaded (trained) model, loaded on first use."""
        return self._model()

    def variant_model(self, variant: str, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """(model, record) of ``variant`` made with ``options`` (None: the config's, see ``variant_options``); the
        previous variant is dropped first (one in memory at a time)."""
        opts = self.variant_options if options is None else dict(options)
        name = (variant, tuple(sorted(opts.items())))
        held_name, held_model, held_record = self._held
        if held_name == name:
            return held_model, held_record  # type: ignore[return-value]
        self._held = (None, None, None)
        del held_model
        loaded = self._model()
        t0 = time.perf_counter()
        model, record = make_variant(loaded, variant, seed=int(self.cfg.variant_seed), **opts)
        self._tick("make_variants", t0)
        self._held = (name, model, record)
        return model, record

    def release_model(self) -> None:
        """Drop the held variant and the loaded model (free memory once caches and metrics are done)."""
        self._held = (None, None, None)
        self._loaded = None

    # --- stage 0: text -> windows ---
    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            t0 = time.perf_counter()
            self._corpus = load_corpus(self.cfg.corpus, max_chars=self.cfg.max_corpus_chars)
            self._tick("corpus", t0)
        return self._corpus

    @property
    def test_corpus(self) -> Corpus | None:
        """The held-out windows' own corpus (``test_corpus``; the paper: a disjoint slice of the same data set), or
        None when they are split off ``corpus`` by document. Read up to ~16 characters per needed token."""
        if self._test_corpus is None and self.cfg.test_corpus is not None:
            t0 = time.perf_counter()
            cap = 16 * int(self.cfg.n_test_windows) * int(self.cfg.ctx)
            self._test_corpus = load_corpus(self.cfg.test_corpus, max_chars=min(cap, self.cfg.max_corpus_chars or cap))
            self._tick("corpus", t0)
        return self._test_corpus

    def windows(self) -> dict[str, torch.Tensor]:
        """{"train": (n_train, ctx), "test": (n_test, ctx)} token windows, disjoint by document (or by corpus)."""
        if self._windows is None:
            c, held_out = self.corpus, self.test_corpus
            t0 = time.perf_counter()
            n_test = 0 if held_out is not None else self.cfg.n_test_windows
            self._windows = tokenize_windows(
                c,
                self.tokenizer,
                self.cfg.ctx,
                self.cfg.n_train_windows,
                n_test,
                self.cfg.window_seed,
            )
            if held_out is not None:
                self._windows["test"] = tokenize_windows(
                    held_out,
                    self.tokenizer,
                    self.cfg.ctx,
                    0,
                    self.cfg.n_test_windows,
                    self.cfg.window_seed,
                )["test"]
            self._tick("tokenize", t0)
        return self._windows

    # --- stage 1: caches ---
    def cache_meta(self, variant: str) -> dict[str, Any]:
        c = self.corpus
        return {
            "model": self.cfg.model,
            "revision": self.cfg.revision,
            "variant": variant,
            "seed": int(self.cfg.variant_seed),
            "corpus_sha256": c.sha256,
            "corpus_source": c.source,
            "corpus_chars": c.n_chars,
            "corpus_docs": c.n_docs,
            "window_seed": int(self.cfg.window_seed),
            **({"variant_options": self.variant_options} if self.variant_options else {}),
            **(
                {"test_corpus_sha256": self.test_corpus.sha256, "test_corpus_source": self.test_corpus.source}
                if self.test_corpus is not None
                else {}
            ),
        }

    def build_cache(self, variant: str, progress: bool = False) -> ActivationCache:
        """Stage 1: the activation cache of ``variant`` (harvested now if missing or stale, resumed if partial)."""
        windows = self.windows()
        if self.streaming:
            windows = {"test": windows["test"]}
        meta = self.cache_meta(variant)
        forward = planned_forward(self.cfg.model, self.cfg.device, self.harvest_dtype)
        key = cache_key(meta, self.cfg.layers, windows, self.cfg.cache_dtype, DEFAULT_SHARD_WINDOWS, forward)
        path = self.cache_dir(variant)
        try:  # finished, made with these parameters, and every file still has its recorded sha256
            done = open_cache(path)
            if done.manifest.get("key") == key:
                self._caches[variant] = done
                return done
        except CacheError:
            pass  # missing, partial or damaged: harvest() redoes what is needed (and warns about a bad manifest)
        model, record = self.variant_model(variant)
        t0 = time.perf_counter()
        out = harvest(
            model,
            windows,
            self.cfg.layers,
            path,
            {**meta, "variant_record": record},
            batch_size=int(self.cfg.harvest_batch),
            dtype=self.cfg.cache_dtype,
            progress=progress,
            harvest_dtype=self.harvest_dtype,
        )
        self._tick("harvest", t0)
        self._caches[variant] = out
        return out

    def cache(self, variant: str) -> ActivationCache:
        """The finished cache of ``variant``; StageError if ``build_cache`` has not made it."""
        if variant not in self._caches:
            try:
                self._caches[variant] = open_cache(self.cache_dir(variant))
            except CacheError as err:
                raise StageError(
                    f"no activation cache for variant {variant!r} ({err}); call build_cache({variant!r}) first"
                ) from None
        return self._caches[variant]

    # --- stage 2: SAEs ---
    def train(self, variant: str, layers: Iterable[int] | None = None) -> dict[int, Path]:
        """Stage 2: {layer: SAE folder} for ``variant``, training what is missing (from the cache, or streamed)."""
        c = self.cache(variant)
        layers = [int(x) for x in (layers if layers is not None else self.cfg.layers)]
        t0 = time.perf_counter()
        if self.streaming:
            out = train_saes_streaming(
                lambda: self.variant_model(variant)[0],
                self.windows()["train"],
                layers,
                self.spec,
                {x: self.sae_dir(variant, x) for x in layers},
                self.cache_meta(variant),
                d_model=c.d_model,
                harvest_batch=int(self.cfg.harvest_batch),
            )
        else:
            out = {layer: train_sae(c, layer, self.spec, self.sae_dir(variant, layer)) for layer in layers}
        self._tick("train", t0)
        return out

    def trained(self, variant: str) -> dict[int, Path]:
        """{layer: SAE folder} of ``variant``; StageError if ``train`` has not made one of them."""
        out = {}
        for layer in self.cfg.layers:
            path = self.sae_dir(variant, layer)
            ok, why = verify_artifact(path)
            if not ok:
                raise StageError(f"no trained SAE for {variant!r} layer {layer} ({why}); call train({variant!r}) first")
            out[int(layer)] = path
        return out

    # --- stage 3: metrics ---
    def measure(self, variant: str) -> pd.DataFrame:
        """Stage 3: tidy metrics of every SAE of ``variant`` on the held-out windows (reused when unchanged)."""
        c = self.cache(variant)
        sae_dirs = self.trained(variant)
        params = {
            "cache": c.manifest_hash(),
            # What the SAE files hold, not only how they were made: a rebuilt SAE remeasures.
            "saes": {str(layer): content_hash(p) for layer, p in sae_dirs.items()},
            "n_spliced_windows": int(self.cfg.n_spliced_windows),
            "split": "test",
            "exclude_tokens": list(self.exclude_tokens),
        }

        def build(tmp: Path) -> None:
            model, _ = self.variant_model(variant)
            saes = {layer: load_sae(p, device=self.cfg.device) for layer, p in sae_dirs.items()}
            # Stored for notebooks 04, 07 and 08, which read the same codes instead of encoding again.
            codes = {layer: load_codes(saes[layer], sae_dirs[layer], c, layer) for layer in saes}
            rows = metrics_mod.evaluate_variant(
                model,
                c,
                saes,
                n_spliced_windows=int(self.cfg.n_spliced_windows),
                exclude_tokens=self.exclude_tokens,
                codes=codes,
            )
            metrics_mod.tidy(rows).to_csv(tmp / "metrics.csv", index=False)

        t0 = time.perf_counter()
        path = cached_artifact(
            self.metrics_dir(variant), params, build, code=("rsae_utils.sae.metrics", "rsae_utils.sae.codes")
        )
        self._tick("metrics", t0)
        return pd.read_csv(path / "metrics.csv")

    def measure_all(self) -> pd.DataFrame:
        """Stage 3 for every variant, then the model is released. Variants are visited last-built first, so the
        variant still held from the previous stage is used before any other is made."""
        frames = [self.measure(variant) for variant in reversed(self.cfg.variants)]
        self.release_model()
        table = metrics_mod.tidy(pd.concat(frames, ignore_index=True))
        save_table(
            table, paths.metrics_table(self.profile), self.cfg.to_dict(), note="tidy SAE quality metrics (nb 03)"
        )
        return table

    # --- the index notebook 04 reads ---
    def runs(self) -> pd.DataFrame:
        """(model, variant, label, layer, sae_dir, cache_dir) + training summary of this config's SAEs."""
        root = paths.work_dir(self.profile)
        labels = self.variant_labels()
        rows = []
        for variant in self.cfg.variants:
            for layer, sae in self.trained(variant).items():
                rec = load_record(sae)
                rows.append(
                    {
                        "model": self.cfg.model,
                        "variant": variant,
                        "label": labels[variant],
                        "layer": int(layer),
                        "sae_dir": str(sae.relative_to(root)),
                        "cache_dir": str(self.cache_dir(variant).relative_to(root)),
                        "architecture": rec["architecture"],
                        "d_sae": rec["d_sae"],
                        "k": self.spec.k if self.spec.arch.fixed_l0 else None,  # TopK's k; none for L1
                        "tokens_trained": rec["tokens_trained"],
                        "train_fvu_end": (rec.get("final") or {}).get("fvu"),
                        "runtime_s": rec["runtime_s"],
                    }
                )
        return pd.DataFrame(rows)

    def write_index(self) -> pd.DataFrame:
        """Write the SAE index (``paths.sae_index``) that notebook 04 reads; returns it."""
        runs = self.runs()
        save_table(
            runs,
            paths.sae_index(self.profile),
            self.cfg.to_dict(),
            note="SAEs trained by notebook 03; paths relative to the profile's work dir",
        )
        return runs

    def variant_labels(self) -> dict[str, str]:
        """Display label of each variant as its cache recorded it (e.g. step-0 says which initializer stood in)."""
        return {v: variant_label(v, self.cache(v).manifest.get("variant_record")) for v in self.cfg.variants}

    def figure_note(self) -> str:
        """The caption of notebook 03's figures: the run's scale, and where it differs from the paper."""
        c = self.cfg
        note = (
            f"{c.model}, layers {list(c.layers)}, {c.architecture} R={c.expansion} k={c.k}, "
            f"{c.train_tokens:,} training tokens per SAE, ctx {c.ctx}, corpus {c.corpus}"
        )
        if c.profile != "paper":
            note += " (paper: Pythia, RedPajama, ctx 2048, R=64, 100M tokens)"
        if self.variant_options:
            note += f"; variants made with {self.variant_options}"
        if "step0" in c.variants and self.variant_labels()["step0"] != variant_label("step0"):
            note += "; step-0 = architecture initializer (no step0 checkpoint)"
        return note

    def cache_summary(self) -> pd.DataFrame:
        rows = []
        for variant in self.cfg.variants:
            m = self.cache(variant).manifest
            rec = m.get("variant_record") or {}
            rows.append(
                {
                    "variant": variant,
                    "label": rec.get("label"),
                    "tokens": sum(m["n_tokens"].values()),
                    "layers": ",".join(map(str, m["layers"])),
                    "dtype": m["dtype"],
                    "MB": round(sum(s["bytes"] for s in m["shards"]) / 2**20, 1),
                    "harvest_s": round(m["harvest_seconds"], 1),
                    "tokens_per_s": m.get("harvest_tokens_per_s"),
                    "description": rec.get("description"),
                }
            )
        return pd.DataFrame(rows)


def trained_runs(profile: str) -> pd.DataFrame:
    """The SAEs notebook 03 trained under ``profile``: model, variant, label, layer, sae_dir, cache_dir (absolute)."""
    root = paths.work_dir(profile)
    df = load_table(paths.sae_index(profile), rerun=paths.rerun_03(profile))
    for col in ("sae_dir", "cache_dir"):
        df[col] = [str(root / p) for p in df[col]]
    return df


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """{variant: display label} of an index from :func:`trained_runs` (the step-0 stand-in keeps its own label)."""
    return labels_from_pairs(list(runs["variant"]), list(runs["label"]) if "label" in runs else None)
