"""The SAE stage's trainers behind one interface, and their registry (one entry per ``spec.TRAINERS`` name).

A :class:`Trainer` trains one SAE of a spec on one cached layer and saves it in sae-lens's format (``cfg.json`` +
``sae_weights.safetensors``); :func:`rsae_utils.sae.train.train_sae` keys, stores and reuses the result and asks
:func:`trainer_for` which trainer a spec names, instead of testing names. The toy trainer of notebooks 01 and 02
(:mod:`rsae_utils.toys.mmcs`) is not one of these: it trains many tiny L1 SAEs at once on synthetic data.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.saelens import RecordingTrainer, make_training_sae, trainer_config, training_record
from rsae_utils.sae.spec import FAST, SAE_LENS, TRAINERS, SAESpec, TrainerKind, check_trainer
from rsae_utils.sae.topk import TopKResult, to_sae_lens, train_topk


class Trainer(Protocol):
    """One way of training an SAE of a spec from an activation cache."""

    kind: TrainerKind  # its name, the architectures it trains, whether it streams (spec.TRAINERS)
    code: tuple[str, ...]  # the modules whose source decides the SAEs it trains (part of their artifact key)

    def dead_tokens(self, spec: SAESpec, d_model: int) -> int:
        """Its dead-latent rule: tokens without a positive activation after which a latent counts as dead."""
        ...

    def train(
        self, cache: ActivationCache, layer: int, spec: SAESpec, out: Path, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Train the SAE of ``spec`` on ``cache``'s training split at ``layer``, save it (sae-lens format, with
        ``metadata``) in ``out``; returns the training record's fields."""
        ...


def cache_fields(cache: ActivationCache, tokens_trained: int, train_windows: int | None = None) -> dict[str, Any]:
    """The record fields that say which cache an SAE trained on (its first ``train_windows`` training windows
    when given) and how many epochs over it."""
    available = cache.n_tokens("train") if train_windows is None else int(train_windows) * cache.ctx
    return {
        "cache_dir": str(cache.root),
        "cache_key": cache.manifest["key"],
        "train_tokens_available": available,
        "epochs": round(tokens_trained / max(available, 1), 3),
    }


class SaeLensTrainer:
    """sae-lens's ``SAETrainer`` (TopK and ReLU + L1): MSE on inputs normalised to mean norm sqrt(d_model)."""

    kind = TRAINERS[SAE_LENS]
    code = ("rsae_utils.sae.saelens",)

    def dead_tokens(self, spec: SAESpec, d_model: int) -> int:
        return spec.dead_tokens(d_model)  # sae-lens counts its window in steps: whole batches

    def train(
        self, cache: ActivationCache, layer: int, spec: SAESpec, out: Path, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        sae = make_training_sae(spec, cache.d_model, metadata)
        cfg = trainer_config(spec, cache.d_model, min(50, cache.n_tokens("train") // spec.batch_size))
        batches = spec_batches(cache, layer, spec)
        trainer = RecordingTrainer(cfg=cfg, sae=sae, data_provider=batches, log_every=spec.log_every)
        trained = trainer.fit()
        seconds = time.perf_counter() - t0
        trained.save_inference_model(out)
        return {
            **training_record(trainer, spec, cache.d_model, seconds),
            **cache_fields(cache, trainer.n_training_samples),
            "trainer": "sae_lens.SAETrainer",
        }


def spec_batches(cache: ActivationCache, layer: int, spec: SAESpec) -> Iterator[torch.Tensor]:
    """The endless batches an SAE of ``spec`` trains on: batch order ``spec.batch_seed``, excluded tokens left
    out, only the first ``spec.train_windows`` windows when set."""
    return cache.iter_batches(
        layer, spec.batch_size, seed=spec.batch_seed, exclude_tokens=spec.exclude_tokens, n_windows=spec.train_windows
    )


def fast_options(cache: ActivationCache, spec: SAESpec) -> dict[str, Any]:
    """The fast trainer's options from ``spec`` (:class:`TopKTrainer` and :func:`train_topk` take them alike)."""
    return {
        "lr": spec.lr,
        "seed": spec.seed,
        "dead_tokens_threshold": spec.dead_tokens(cache.d_model),
        "lr_warmup_steps": spec.lr_warm_up_steps,
        "matmul_dtype": spec.matmul_dtype,
    }


def fit_topk(cache: ActivationCache, layer: int, spec: SAESpec) -> TopKResult:
    """The fast trainer's SAE of ``spec`` (TopK) on ``cache``'s layer, in memory: ``spec.n_tokens`` cached tokens
    in whole batches (at least one), batch order ``spec.batch_seed``, dead after ``spec.dead_tokens(d_model)`` tokens.
    Notebook 06's sweep calls it too, so its SAEs and notebook 03's are the same from the same spec."""
    steps = max(1, spec.n_tokens // spec.batch_size)
    return train_topk(
        itertools.islice(spec_batches(cache, layer, spec), steps),
        cache.d_model,
        spec.d_sae(cache.d_model),
        spec.k,
        log_every=spec.log_every,
        **fast_options(cache, spec),
    )


class FastTrainer:
    """:mod:`rsae_utils.sae.topk` (TopK only): sparsify's FVU + AuxK rule on raw activations, unit-norm decoder
    rows; several times faster than sae-lens's on a CPU at R >= 16."""

    kind = TRAINERS[FAST]
    code = ("rsae_utils.sae.topk",)

    def dead_tokens(self, spec: SAESpec, d_model: int) -> int:
        # DEAD_ACTIVATIONS expected activations without firing (sparsify's 10M tokens at the paper's width and k).
        return spec.dead_tokens(d_model)

    def train(
        self, cache: ActivationCache, layer: int, spec: SAESpec, out: Path, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = fit_topk(cache, layer, spec)
        to_sae_lens(res, metadata).save_model(out)
        return fast_record(res, spec, cache, time.perf_counter() - t0)


def fast_record(res: TopKResult, spec: SAESpec, cache: ActivationCache, runtime_s: float) -> dict[str, Any]:
    """The training-record fields of a fast-trainer SAE (``res``: the trainer's result at the end of its run, or
    at a snapshot of a longer one, :mod:`rsae_utils.sae.snapshots`)."""
    n_dead = int((res.tokens_since_fired > spec.dead_tokens(cache.d_model)).sum())
    return {
        "d_sae": res.d_sae,
        "architecture": spec.architecture,
        "seed": spec.seed,
        "tokens_trained": res.tokens,
        "steps": res.steps,
        "final": res.curve[-1] if res.curve else None,
        "dead_latents_at_end": n_dead,
        "dead_fraction_at_end": n_dead / res.d_sae,
        "loss_curve": res.curve,
        "tokens_per_s": round(res.tokens / max(res.seconds, 1e-9), 1),
        "matmul_dtype": res.matmul_dtype,
        **cache_fields(cache, res.tokens, spec.train_windows),
        "trainer": "rsae_utils.sae.topk (fast TopK: FVU + AuxK)",
        "runtime_s": round(runtime_s, 3),
    }


TRAINER_CODE: dict[str, Trainer] = {SAE_LENS: SaeLensTrainer(), FAST: FastTrainer()}


def trainer_for(spec: SAESpec) -> Trainer:
    """The trainer ``spec.trainer`` names (ParameterError naming the allowed ones, or the trainers of
    ``spec.architecture``, otherwise)."""
    check_trainer(spec.trainer, spec.architecture)
    return TRAINER_CODE[spec.trainer]
