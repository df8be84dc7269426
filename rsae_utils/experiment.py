"""The pipeline of notebook 03 (variants -> activation caches -> SAEs -> metrics), shared with notebook 04.

Layout under ``paths.work_dir(profile)``::

    caches/<model>/<variant>-seed<S>/              activation cache (rsae_utils.cache)
    saes/<model>/<variant>-seed<S>/L<layer>-<arch>-R<R>-k<k>-s<seed>/   sae-lens SAE + training_record.json
    metrics/<model>/<variant>-seed<S>/             metrics.csv of that variant (store artifact)
    sae_runs.csv (+ .manifest.json)                index of trained SAEs: what notebook 04 reads
    metrics.csv  (+ .manifest.json)                the tidy metrics table of the last run

Every stage reuses what is finished: a cache with the same key, an SAE with the same parameters on the same
cache, metrics of the same SAEs. The model is loaded only when some cache or metric is missing, and only one
variant is held in memory at a time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rsae_utils import cache as cache_mod
from rsae_utils import metrics as metrics_mod
from rsae_utils.cache import ActivationCache, cache_key, harvest, open_cache
from rsae_utils.paths import work_dir
from rsae_utils.store import cached_artifact, load_table, read_json, save_table
from rsae_utils.train import SAESpec, load_record, load_sae, train_sae, train_saes_streaming

INDEX = "sae_runs.csv"
METRICS_TABLE = "metrics.csv"
__all__ = ["Experiment", "trained_runs", "run_labels", "load_sae", "open_cache", "spec_from_config"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def spec_from_config(cfg: Any) -> SAESpec:
    """The SAE spec of a resolved notebook-03 Config."""
    return SAESpec(
        architecture=cfg.architecture,
        expansion=int(cfg.expansion),
        k=int(cfg.k),
        l1_coefficient=float(cfg.l1_coefficient),
        n_tokens=int(cfg.train_tokens),
        batch_size=int(cfg.batch_size),
        lr=float(cfg.lr),
        seed=int(cfg.sae_seed),
    )


def sae_name(layer: int, spec: SAESpec) -> str:
    k = f"-k{spec.k}" if spec.architecture == "topk" else f"-l1{spec.l1_coefficient:g}"
    return f"L{layer:02d}-{spec.architecture}-R{spec.expansion}{k}-s{spec.seed}"


class Experiment:
    """Notebook 03's run for one resolved Config: lazy model, windows, caches, SAEs, metrics."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.root = work_dir(cfg.profile)
        self._spec: SAESpec | None = None
        self.timings: dict[str, float] = {}
        self._loaded: Any = None
        self._tokenizer: Any = None
        self._windows: dict[str, torch.Tensor] | None = None
        self._corpus: Any = None
        self._held: tuple[str | None, Any, dict | None] = (None, None, None)
        self.variant_records: dict[str, dict] = {}
        self._caches: dict[str, ActivationCache] = {}  # opened and verified once per run

    @property
    def exclude_tokens(self) -> tuple[int, ...]:
        """Token ids left out of SAE training and metrics (the document-boundary token, an attention sink)."""
        if not self.cfg.exclude_boundary_token:
            return ()
        from rsae_utils.corpus import boundary_token_id

        return (boundary_token_id(self.tokenizer),)

    @property
    def spec(self) -> SAESpec:
        if self._spec is None:
            self._spec = replace(spec_from_config(self.cfg), exclude_tokens=self.exclude_tokens)
        return self._spec

    # --- timing ---
    def _tick(self, stage: str, t0: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - t0, 2)

    # --- model, tokenizer, windows (lazy) ---
    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from rsae_utils.models import load_model

            t0 = time.perf_counter()
            self._loaded = load_model(self.cfg.model, device=self.cfg.device, revision=self.cfg.revision)
            self._tick("load_model", t0)
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self._loaded is not None:
                self._tokenizer = self._loaded.tokenizer
            else:
                from rsae_utils.models import load_tokenizer

                self._tokenizer = load_tokenizer(self.cfg.model)
        return self._tokenizer

    @property
    def corpus(self) -> Any:
        if self._corpus is None:
            from rsae_utils.corpus import load_corpus

            t0 = time.perf_counter()
            self._corpus = load_corpus(self.cfg.corpus, max_chars=self.cfg.max_corpus_chars)
            self._tick("corpus", t0)
        return self._corpus

    @property
    def windows(self) -> dict[str, torch.Tensor]:
        """{"train": (n_train, ctx), "test": (n_test, ctx)} token windows, disjoint."""
        if self._windows is None:
            from rsae_utils.corpus import tokenize_windows

            c = self.corpus
            t0 = time.perf_counter()
            self._windows = tokenize_windows(
                c, self.tokenizer, self.cfg.ctx, self.cfg.n_train_windows, self.cfg.n_test_windows,
                self.cfg.window_seed,
            )  # fmt: skip
            self._tick("tokenize", t0)
        return self._windows

    def variant_model(self, variant: str) -> tuple[Any, dict]:
        """(model, record) of ``variant``; the previous variant is dropped first (one in memory at a time)."""
        held_name, held_model, held_record = self._held
        if held_name == variant:
            return held_model, held_record  # type: ignore[return-value]
        from rsae_utils.variants import make_variant

        self._held = (None, None, None)
        del held_model
        loaded = self.loaded
        t0 = time.perf_counter()
        model, record = make_variant(loaded, variant, seed=int(self.cfg.variant_seed))
        self._tick("make_variants", t0)
        self._held = (variant, model, record)
        self.variant_records[variant] = record
        return model, record

    def release_model(self) -> None:
        """Drop the held variant and the loaded model (free memory once caches and metrics are done)."""
        self._held = (None, None, None)
        self._loaded = None

    # --- paths ---
    def model_slug(self) -> str:
        rev = f"@{self.cfg.revision}" if self.cfg.revision else ""
        return _slug(f"{self.cfg.model}{rev}")

    def cache_dir(self, variant: str) -> Path:
        return self.root / "caches" / self.model_slug() / f"{variant}-seed{self.cfg.variant_seed}"

    def sae_dir(self, variant: str, layer: int) -> Path:
        return self.root / "saes" / self.model_slug() / f"{variant}-seed{self.cfg.variant_seed}" / sae_name(
            layer, self.spec
        )

    def metrics_dir(self, variant: str) -> Path:
        return self.root / "metrics" / self.model_slug() / f"{variant}-seed{self.cfg.variant_seed}"

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
        }

    def cache(self, variant: str, progress: bool = False) -> ActivationCache:
        """The finished activation cache of ``variant`` (harvested now if missing, resumed if partial)."""
        if variant in self._caches:
            return self._caches[variant]
        self._caches[variant] = self._cache(variant, progress)
        return self._caches[variant]

    @property
    def streaming(self) -> bool:
        """True when SAEs train on activations streamed from the model (the cache then holds the test split only)."""
        return getattr(self.cfg, "train_from", "cache") == "stream"

    def _cache(self, variant: str, progress: bool) -> ActivationCache:
        meta = self.cache_meta(variant)
        windows = self.windows
        if self.streaming:
            windows = {"test": windows["test"]}
        key = cache_key(meta, self.cfg.layers, windows, self.cfg.cache_dtype, cache_mod.DEFAULT_SHARD_WINDOWS)
        path = self.cache_dir(variant)
        if cache_mod.is_complete(path, key):
            done = open_cache(path)
            if not done.verify(check_hash=True):  # every shard still has its recorded sha256
                return done
        model, record = self.variant_model(variant)
        t0 = time.perf_counter()
        out = harvest(
            model, windows, self.cfg.layers, path, {**meta, "variant_record": record},
            batch_size=int(self.cfg.harvest_batch), dtype=self.cfg.cache_dtype, progress=progress,
        )  # fmt: skip
        self._tick("harvest", t0)
        return out

    # --- stage 2: SAEs ---
    def train(self, variant: str, layers: Iterable[int] | None = None) -> dict[int, Path]:
        """{layer: SAE folder} for ``variant``, training what is missing (from the cache, or streamed)."""
        c = self.cache(variant)
        layers = [int(x) for x in (layers if layers is not None else self.cfg.layers)]
        if self.streaming:
            t0 = time.perf_counter()
            out = train_saes_streaming(
                lambda: self.variant_model(variant)[0], self.windows["train"], layers, self.spec,
                {x: self.sae_dir(variant, x) for x in layers}, self.cache_meta(variant), d_model=c.d_model,
                harvest_batch=int(self.cfg.harvest_batch),
            )  # fmt: skip
            self._tick("train", t0)
            return out
        out = {}
        for layer in layers:
            t0 = time.perf_counter()
            out[int(layer)] = train_sae(c, int(layer), self.spec, self.sae_dir(variant, int(layer)))
            self._tick("train", t0)
        return out

    # --- stage 3: metrics ---
    def metrics(self, variant: str) -> pd.DataFrame:
        """Tidy metrics of every SAE of ``variant`` on the held-out windows (reused when unchanged)."""
        c = self.cache(variant)
        sae_dirs = self.train(variant)
        params = {
            "cache": c.manifest_hash(),
            "saes": {str(layer): read_json(p / "manifest.json")["key"] for layer, p in sae_dirs.items()},
            "n_spliced_windows": int(self.cfg.n_spliced_windows),
            "split": "test",
            "exclude_tokens": list(self.exclude_tokens),
        }

        def build(tmp: Path) -> None:
            model, _ = self.variant_model(variant)
            saes = {layer: load_sae(p, device=self.cfg.device) for layer, p in sae_dirs.items()}
            rows = metrics_mod.evaluate_variant(model, c, saes, n_spliced_windows=int(self.cfg.n_spliced_windows),
                                                exclude_tokens=self.exclude_tokens)
            metrics_mod.tidy(rows).to_csv(tmp / "metrics.csv", index=False)

        t0 = time.perf_counter()
        path = cached_artifact(self.metrics_dir(variant), params, build, code=("rsae_utils.metrics",))
        self._tick("metrics", t0)
        return pd.read_csv(path / "metrics.csv")

    # --- everything ---
    def run(self, progress: bool = False) -> pd.DataFrame:
        """Caches, SAEs and metrics for every variant (each variant's stages back to back, one model in memory)."""
        frames = []
        for variant in self.cfg.variants:
            if progress:
                print(f"[{variant}] cache", flush=True)
            self.cache(variant, progress=progress)
            if progress:
                print(f"[{variant}] SAEs", flush=True)
            self.train(variant)
            if progress:
                print(f"[{variant}] metrics", flush=True)
            frames.append(self.metrics(variant))
        self.release_model()
        df = metrics_mod.tidy(pd.concat(frames, ignore_index=True))
        self.save_metrics(df)
        self.write_index()
        return df

    def save_metrics(self, df: pd.DataFrame) -> Path:
        """Write the tidy metrics table (with its manifest) to the profile's work dir."""
        return save_table(df, self.root / METRICS_TABLE, self.cfg.to_dict(), note="tidy SAE quality metrics (nb 03)")

    def runs(self) -> pd.DataFrame:
        """(model, variant, label, layer, sae_dir, cache_dir) + training summary of this config's SAEs (all must
        exist). ``label`` is the variant's display label as its cache recorded it (step-0 says which it is)."""
        rows = []
        labels = self.variant_labels()
        for variant in self.cfg.variants:
            for layer in self.cfg.layers:
                sae = self.sae_dir(variant, layer)
                rec = load_record(sae)
                rows.append({
                    "model": self.cfg.model,
                    "variant": variant,
                    "label": labels[variant],
                    "layer": int(layer),
                    "sae_dir": str(sae.relative_to(self.root)),
                    "cache_dir": str(self.cache_dir(variant).relative_to(self.root)),
                    "architecture": rec["architecture"],
                    "d_sae": rec["d_sae"],
                    "k": self.spec.k if self.spec.architecture == "topk" else None,
                    "tokens_trained": rec["tokens_trained"],
                    "train_fvu_end": (rec.get("final") or {}).get("fvu"),
                    "runtime_s": rec["runtime_s"],
                })  # fmt: skip
        return pd.DataFrame(rows)

    def write_index(self) -> Path:
        return save_table(self.runs(), self.root / INDEX, self.cfg.to_dict(),
                          note="SAEs trained by notebook 03; paths relative to the profile's work dir")

    def variant_labels(self) -> dict[str, str]:
        """Display label of each variant as its cache recorded it (e.g. step-0 says which initializer stood in)."""
        from rsae_utils.plotting import variant_label

        out = {}
        for variant in self.cfg.variants:
            rec = open_cache(self.cache_dir(variant)).manifest.get("variant_record") or {}
            out[variant] = rec.get("label") or variant_label(variant)
        return out

    def cache_summary(self) -> pd.DataFrame:
        rows = []
        for variant in self.cfg.variants:
            m = open_cache(self.cache_dir(variant)).manifest
            size = sum(s["bytes"] for s in m["shards"])
            rec = m.get("variant_record") or {}
            rows.append({
                "variant": variant,
                "label": rec.get("label"),
                "tokens": sum(m["n_tokens"].values()),
                "layers": ",".join(map(str, m["layers"])),
                "dtype": m["dtype"],
                "MB": round(size / 2**20, 1),
                "harvest_s": round(m["harvest_seconds"], 1),
                "tokens_per_s": m.get("harvest_tokens_per_s"),
                "description": rec.get("description"),
            })  # fmt: skip
        return pd.DataFrame(rows)


def trained_runs(profile: str) -> pd.DataFrame:
    """The SAEs notebook 03 trained under ``profile``: model, variant, label, layer, sae_dir, cache_dir (absolute)."""
    root = work_dir(profile)
    df = load_table(root / INDEX)
    for col in ("sae_dir", "cache_dir"):
        df[col] = [str(root / p) for p in df[col]]
    return df


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """{variant: display label} of an index from :func:`trained_runs` (the step-0 stand-in keeps its own label)."""
    from rsae_utils.plotting import variant_label

    if "label" not in runs:
        return {v: variant_label(v) for v in runs["variant"].unique()}
    labels: dict[str, str] = {}
    for v, lab in zip(runs["variant"], runs["label"]):
        labels.setdefault(v, lab if isinstance(lab, str) and lab else variant_label(v))
    return labels
