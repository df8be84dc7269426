"""SAE training from the activation cache (or streamed activations), stored and reused.

One SAE per (cache, layer), trained by the trainer its spec names (:mod:`rsae_utils.sae.trainers`: sae-lens's
``SAETrainer``, TopK and ReLU + L1, or the fast TopK trainer of :mod:`rsae_utils.sae.topk`, the paper's sparsify
rule), reads shuffled batches from ``ActivationCache.iter_batches`` (the model never runs again), and the result is
saved in sae-lens's own format (``cfg.json`` + ``sae_weights.safetensors``; ``SAE.load_from_disk`` loads it) with
``training_record.json`` and the store's ``manifest.json`` beside it. The folder is keyed by the SAE parameters,
the layer and the hash of the cache's manifest: a rerun with the same key reuses it; anything else retrains.

Same parameters and seed give the same weights: the seed fixes the initialisation (``torch.manual_seed`` before
the SAE is built) and the batch order (the cache iterator's own generator; ``data_seed``, when set, fixes the
batch order instead, so SAEs can differ in their initialisation alone).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from rsae_utils.errors import ArtifactError
from rsae_utils.repro import seed_everything
from rsae_utils.sae.cache import ActivationCache, hook_name, token_mask
from rsae_utils.sae.harvest import stream_activations
from rsae_utils.sae.saelens import RecordingMultiTrainer, make_training_sae, trainer_config, training_record
from rsae_utils.sae.spec import SAESpec, check_trainer, sae_name
from rsae_utils.sae.trainers import trainer_for
from rsae_utils.store import artifact_key, cached_artifact, read_json, verify_artifact, write_json

__all__ = [  # SAESpec and sae_name are re-exported: most readers import them from here
    "RECORD",
    "SAESpec",
    "load_record",
    "load_sae",
    "sae_name",
    "sae_params",
    "stream_sae_params",
    "train_sae",
    "train_saes_streaming",
]
RECORD = "training_record.json"


def sae_params(cache: ActivationCache, layer: int, spec: SAESpec) -> dict[str, Any]:
    """The artifact key's parameters: the spec, where it reads, and what the cache holds."""
    return {
        "spec": asdict(spec),
        "layer": int(layer),
        "hook_name": hook_name(layer),
        "model": cache.model,
        "variant": cache.variant,
        "d_model": cache.d_model,
        "cache_manifest_hash": cache.manifest_hash(),
    }


def train_sae(cache: ActivationCache, layer: int, spec: SAESpec, out_dir: str | Path, force: bool = False) -> Path:
    """Train (or reuse) the SAE of ``spec`` on ``cache``'s layer; returns its folder (sae-lens format)."""
    spec.validate(cache.d_model)
    params = sae_params(cache, layer, spec)
    trainer = trainer_for(spec)

    def build(tmp: Path) -> dict[str, Any]:
        seed_everything(spec.seed)
        write_json(tmp / RECORD, {**params, **trainer.train(cache, layer, spec, tmp, sae_metadata(cache, layer))})
        return {"training_record": RECORD}

    return cached_artifact(out_dir, params, build, code=sae_code(spec), force=force)


def sae_code(spec: SAESpec) -> tuple[str, ...]:
    """The modules whose source is part of the artifact key of an SAE of ``spec``."""
    return ("rsae_utils.sae.train", *trainer_for(spec).code)


def sae_metadata(cache: ActivationCache, layer: int) -> dict[str, Any]:
    """sae-lens metadata of an SAE trained on ``cache``'s layer."""
    return {
        "model_name": cache.model,
        "hook_name": hook_name(layer),
        "context_size": cache.ctx,
        "prepend_bos": False,
        "dataset_path": str(cache.manifest.get("corpus_source") or cache.manifest.get("corpus_sha256")),
        "rsae_variant": cache.variant,
    }


def _resolve(model: Any) -> Any:
    """A model given directly, or made by a zero-argument callable (a HookedTransformer is callable too: it has cfg)."""
    return model if hasattr(model, "cfg") else model()


def stream_sae_params(
    tokens: torch.Tensor, layer: int, spec: SAESpec, meta: Mapping[str, Any], d_model: int
) -> dict[str, Any]:
    """The artifact key's parameters of an SAE trained on streamed activations (no cache to point at): the spec,
    the hook, what made the activations (``meta``: model, variant, seed, corpus ...) and the exact training tokens."""
    return {
        "spec": asdict(spec),
        "layer": int(layer),
        "hook_name": hook_name(layer),
        "d_model": int(d_model),
        "source": "stream",
        "meta": dict(meta),
        "train_tokens_sha256": hashlib.sha256(tokens.contiguous().numpy().tobytes()).hexdigest(),
        "train_windows": list(tokens.shape),
    }


def train_saes_streaming(
    model: Any,
    tokens: torch.Tensor,
    layers: Sequence[int],
    spec: SAESpec,
    out_dirs: Mapping[int, str | Path],
    meta: Mapping[str, Any],
    *,
    d_model: int | None = None,
    harvest_batch: int = 8,
    buffer_tokens: int | None = None,
    force: bool = False,
) -> dict[int, Path]:
    """One SAE per layer trained in lockstep on activations streamed from ``model`` (never stored); {layer: folder}.

    For runs too large to cache (the paper's 100M tokens per SAE). One forward per batch of windows feeds every
    layer's SAE (sae-lens's ``MultiSAETrainer``); each SAE is saved like :func:`train_sae` (sae-lens format,
    ``training_record.json``, manifest) and keyed by :func:`stream_sae_params`, so finished layers are reused and
    only the missing ones are trained. Each SAE's initialisation is seeded as in :func:`train_sae`. Long because it
    drives sae-lens's ``MultiSAETrainer`` loop, whose set-up, buffer and save steps share the same local state.

    ``model`` may be a callable returning the model, called only when some layer needs training (with
    ``d_model`` given, nothing is loaded when every SAE is already there).
    """
    d_model = int(d_model if d_model is not None else _resolve(model).cfg.d_model)
    spec.validate(d_model)
    check_trainer(spec.trainer, spec.architecture, streaming=True)
    layers = sorted({int(x) for x in layers})
    tokens = torch.as_tensor(tokens).long().cpu()
    params = {layer: stream_sae_params(tokens, layer, spec, meta, d_model) for layer in layers}
    code = ("rsae_utils.sae.train", "rsae_utils.sae.saelens")
    todo = [x for x in layers if force or not verify_artifact(out_dirs[x], artifact_key(params[x], code))[0]]
    if todo:
        t0 = time.perf_counter()
        model = _resolve(model)
        names = {x: f"L{x}" for x in todo}
        saes = {}
        for x in todo:
            seed_everything(spec.seed)  # the same init as train_sae gives this layer
            saes[names[x]] = make_training_sae(
                spec,
                d_model,
                {
                    "model_name": str(meta.get("model")),
                    "hook_name": hook_name(x),
                    "context_size": int(tokens.shape[1]),
                    "prepend_bos": False,
                    "dataset_path": str(meta.get("corpus_source") or meta.get("corpus_sha256")),
                    "rsae_variant": str(meta.get("variant")),
                },
            )
        available = int(token_mask(tokens, spec.exclude_tokens).sum())
        batches = stream_activations(
            model,
            tokens,
            todo,
            spec.batch_size,
            harvest_batch=harvest_batch,
            seed=spec.batch_seed,
            exclude_tokens=spec.exclude_tokens,
            buffer_tokens=buffer_tokens,
        )
        device = str(next(model.parameters()).device)
        n_norm = min(50, max(1, available // spec.batch_size))
        multi = RecordingMultiTrainer(
            cfg=trainer_config(spec, d_model, n_norm, device=device),
            saes=saes,
            hook_names={names[x]: hook_name(x) for x in todo},
            data_provider=batches,
            log_every=spec.log_every,
        )
        trained = multi.fit()
        seconds = time.perf_counter() - t0
        for x in todo:
            trainer, sae = multi.trainers[names[x]], trained[names[x]]

            def build(tmp: Path, x: int = x, trainer: Any = trainer, sae: Any = sae) -> dict[str, Any]:
                sae.to("cpu").save_inference_model(tmp)
                write_json(
                    tmp / RECORD,
                    {
                        **params[x],
                        **training_record(trainer, spec, d_model, seconds),
                        "train_tokens_available": available,
                        "epochs": round(trainer.n_training_samples / max(available, 1), 3),
                        "layers_trained_together": todo,
                        "trainer": "sae_lens.MultiSAETrainer (streamed activations)",
                    },
                )
                return {"training_record": RECORD}

            cached_artifact(out_dirs[x], params[x], build, code=code, force=True)
    return {x: Path(out_dirs[x]) for x in layers}


def load_sae(path: str | Path, device: str = "cpu") -> SAE:
    """The inference SAE saved in ``path`` (sae-lens format), after checking every file against its manifest
    (ArtifactError naming the file otherwise: a damaged weight file would load as garbage or fail unnamed)."""
    ok, reason = verify_artifact(path)
    if not ok:
        raise ArtifactError(
            f"SAE {path}: {reason}; rerun notebook 03 (make figures NB=03 FORCE=1): its train stage rebuilds it"
        )
    return SAE.load_from_disk(str(path), device=device)


def load_record(path: str | Path) -> dict[str, Any]:
    return read_json(Path(path) / RECORD)
