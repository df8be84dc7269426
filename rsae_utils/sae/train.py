"""SAE training from the activation cache: sae-lens (TopK and standard ReLU + L1 SAEs) or the fast TopK trainer.

One SAE per (cache, layer): sae-lens's ``SAETrainer`` (``trainer='sae-lens'``), or :mod:`rsae_utils.sae.topk`
(``trainer='fast'``: the paper's sparsify training rule, FVU + AuxK, several times faster on a CPU at R >= 16),
reads shuffled batches from ``ActivationCache.iter_batches`` (the model never runs again), and the result is saved
in sae-lens's own format (``cfg.json`` + ``sae_weights.safetensors``; ``SAE.load_from_disk`` loads it) with
``training_record.json`` and the store's ``manifest.json`` beside it. The folder is keyed by the SAE parameters,
the layer and the hash of the cache's manifest: a rerun with the same key reuses it; anything else retrains.

Same parameters and seed give the same weights: the seed fixes the initialisation (``torch.manual_seed`` before
the SAE is built) and the batch order (the cache iterator's own generator; ``data_seed``, when set, fixes the
batch order instead, so SAEs can differ in their initialisation alone).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainStepOutput
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.multi_sae_trainer import MultiSAETrainer
from sae_lens.training.sae_trainer import SAETrainer

from rsae_utils.errors import ArtifactError, ParameterError
from rsae_utils.repro import seed_everything
from rsae_utils.sae.cache import ActivationCache, hook_name, token_mask
from rsae_utils.sae.harvest import stream_activations
from rsae_utils.sae.topk import to_sae_lens, train_topk
from rsae_utils.store import artifact_key, cached_artifact, read_json, verify_artifact, write_json

ARCHITECTURES = ("topk", "relu")
TRAINERS = ("fast", "sae-lens")
RECORD = "training_record.json"


@dataclass(frozen=True)
class SAESpec:
    """Everything that decides an SAE besides its data. ``expansion`` is R: d_sae = R * d_model."""

    architecture: str = "topk"
    # "sae-lens": its SAETrainer (MSE on normalised inputs); "fast": rsae_utils.sae.topk (TopK only; sparsify's
    # FVU + AuxK rule on raw activations, unit-norm decoder rows).
    trainer: str = "sae-lens"
    expansion: int = 4
    k: int = 32  # TopK only
    l1_coefficient: float = 5.0  # ReLU only (sae-lens's L1 term: sum over latents of |z| * ||W_dec row||)
    n_tokens: int = 100_000  # training tokens (epochs over the cached train split when it has fewer)
    batch_size: int = 1024
    lr: float = 1e-3
    lr_warm_up_steps: int = 0
    seed: int = 0
    # Seed of the batch order; None: ``seed`` (one seed fixes both). Set it to train SAEs that differ only in
    # their initialisation: same data, same order of batches (Paulo & Belrose 2025).
    data_seed: int | None = None
    # sae-lens scales inputs to mean norm sqrt(d_model) during training and folds the factor into the saved
    # weights, so one learning rate fits variants whose residual norms differ by orders of magnitude (the
    # paper's sparsify trainer gets the same invariance from its FVU loss).
    normalize_activations: str = "expected_average_only_in"
    # Steps without firing after which a latent counts as dead (TopK's auxiliary loss then trains it on the
    # residual). None: an eighth of the run, at most 10M tokens (the paper's trainer's threshold), at least 5 steps.
    dead_feature_window: int | None = None
    log_every: int = 10  # steps between loss-curve points in the record
    # Token ids whose positions are left out of training (and of the metrics): the document-boundary token that
    # starts every window is an attention sink whose residual norm in a trained model is ~100x the others', so
    # it would dominate the reconstruction loss and the explained variance (sae-lens's evals exclude special
    # tokens for the same reason).
    exclude_tokens: tuple[int, ...] = ()

    @property
    def batch_seed(self) -> int:
        """The seed of the batch order: ``data_seed`` when set, else ``seed``."""
        return self.seed if self.data_seed is None else int(self.data_seed)

    def d_sae(self, d_model: int) -> int:
        return int(self.expansion) * int(d_model)

    def dead_window_steps(self) -> int:
        if self.dead_feature_window is not None:
            return int(self.dead_feature_window)
        return max(5, min(10_000_000, self.n_tokens // 8) // self.batch_size)

    def dead_tokens(self) -> int:
        """The fast trainer's dead-latent threshold in tokens: :meth:`dead_window_steps` whole batches."""
        return max(self.batch_size, self.dead_window_steps() * self.batch_size)

    def validate(self, d_model: int | None = None) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"parameter 'architecture' must be one of {ARCHITECTURES}; got {self.architecture!r}")
        if self.trainer not in TRAINERS:
            raise ParameterError(f"parameter 'trainer' must be one of {TRAINERS}; got {self.trainer!r}")
        if self.trainer == "fast" and self.architecture != "topk":
            raise ParameterError(
                f"parameter 'trainer' 'fast' trains TopK SAEs only; with architecture "
                f"{self.architecture!r} use trainer 'sae-lens'"
            )
        if self.expansion < 1:
            raise ParameterError(f"parameter 'expansion' must be >= 1; got {self.expansion}")
        if d_model is not None and self.architecture == "topk" and not 0 < self.k < self.d_sae(d_model):
            raise ParameterError(
                f"parameter 'k' must be in 1..{self.d_sae(d_model) - 1} (fewer than the {self.d_sae(d_model)} "
                f"latents of R={self.expansion} x d_model={d_model}); got {self.k}"
            )
        if self.n_tokens < self.batch_size:
            raise ParameterError(f"parameter 'n_tokens' must be >= batch_size ({self.batch_size}); got {self.n_tokens}")


def sae_name(layer: int, spec: SAESpec) -> str:
    """The folder name of the SAE of ``spec`` at ``layer`` (``paths.sae_dir`` puts it under its variant)."""
    k = f"-k{spec.k}" if spec.architecture == "topk" else f"-l1{spec.l1_coefficient:g}"
    return f"L{layer:02d}-{spec.architecture}-R{spec.expansion}{k}-s{spec.seed}"


def paper_lr(d_sae: int) -> float:
    """The learning rate rule of the paper's trainer (sparsify): 2e-4 / sqrt(d_sae / 2**14)."""
    return 2e-4 / math.sqrt(d_sae / 2**14)


def make_training_sae(spec: SAESpec, d_model: int, metadata: dict[str, Any] | None = None):
    """A freshly initialised sae-lens training SAE for ``spec`` (uses the global torch RNG: seed first)."""
    meta = SAEMetadata(**(metadata or {}))
    common = dict(
        d_in=d_model,
        d_sae=spec.d_sae(d_model),
        dtype="float32",
        device="cpu",
        normalize_activations=spec.normalize_activations,
        metadata=meta,
    )
    if spec.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(k=spec.k, **common))
    return StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=spec.l1_coefficient, **common))


class _RecordingTrainer(SAETrainer):
    """sae-lens's trainer, noting the losses every ``log_every`` steps (wandb is off, so nothing else would)."""

    def __init__(self, *args: Any, log_every: int = 10, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.log_every = max(1, int(log_every))
        self.curve: list[dict[str, float]] = []

    def step(self, batch: torch.Tensor) -> TrainStepOutput:
        out = super().step(batch)
        if self.n_training_steps % self.log_every == 0:
            with torch.no_grad():
                x, x_hat = out.sae_in, out.sae_out
                fvu = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
                l0 = (out.feature_acts != 0).float().sum(-1).mean().item()
            self.curve.append(
                {
                    "step": self.n_training_steps,
                    "tokens": self.n_training_samples,
                    "fvu": round(fvu, 6),
                    "l0": round(l0, 3),
                    **{k: round(float(v.detach()), 6) for k, v in out.losses.items()},
                }
            )
        return out


def trainer_config(spec: SAESpec, n_batches_for_norm_estimate: int, device: str = "cpu") -> SAETrainerConfig:
    """sae-lens's trainer settings for ``spec`` (constant lr, wandb off, the spec's dead-latent window)."""
    return SAETrainerConfig(
        total_training_samples=int(spec.n_tokens),
        train_batch_size_samples=int(spec.batch_size),
        lr=spec.lr,
        lr_end=spec.lr,
        lr_warm_up_steps=spec.lr_warm_up_steps,
        device=device,
        dead_feature_window=spec.dead_window_steps(),
        feature_sampling_window=spec.dead_window_steps(),
        n_batches_for_norm_estimate=max(1, int(n_batches_for_norm_estimate)),
        logger=LoggingConfig(log_to_wandb=False),
    )


def _training_record(trainer: _RecordingTrainer, spec: SAESpec, d_model: int, seconds: float) -> dict[str, Any]:
    """The fields every training record has, from a finished (recording) trainer."""
    n_dead = int(trainer.dead_neurons.sum().item())
    return {
        "d_sae": spec.d_sae(d_model),
        "architecture": spec.architecture,
        "seed": spec.seed,
        "tokens_trained": trainer.n_training_samples,
        "steps": trainer.n_training_steps,
        "final": trainer.curve[-1] if trainer.curve else None,
        "dead_latents_at_end": n_dead,
        "dead_fraction_at_end": n_dead / spec.d_sae(d_model),
        "loss_curve": trainer.curve,
        "runtime_s": round(seconds, 3),
        "tokens_per_s": round(trainer.n_training_samples / max(seconds, 1e-9), 1),
        "sae_lens_version": trainer.sae.cfg.metadata.get("sae_lens_training_version"),
    }


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

    def build(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        seed_everything(spec.seed)
        metadata = {
            "model_name": cache.model,
            "hook_name": hook_name(layer),
            "context_size": cache.ctx,
            "prepend_bos": False,
            "dataset_path": str(cache.manifest.get("corpus_source") or cache.manifest.get("corpus_sha256")),
            "rsae_variant": cache.variant,
        }
        if spec.trainer == "fast":
            record = _train_fast(cache, layer, spec, tmp, metadata)
            write_json(tmp / RECORD, {**params, **record, "runtime_s": round(time.perf_counter() - t0, 3)})
            return {"training_record": RECORD}
        sae = make_training_sae(spec, cache.d_model, metadata)
        cfg = trainer_config(spec, min(50, cache.n_tokens("train") // spec.batch_size))
        batches = cache.iter_batches(layer, spec.batch_size, seed=spec.batch_seed, exclude_tokens=spec.exclude_tokens)
        trainer = _RecordingTrainer(cfg=cfg, sae=sae, data_provider=batches, log_every=spec.log_every)
        trained = trainer.fit()
        seconds = time.perf_counter() - t0
        trained.save_inference_model(tmp)
        record = {
            **params,
            **_training_record(trainer, spec, cache.d_model, seconds),
            "cache_dir": str(cache.root),
            "cache_key": cache.manifest["key"],
            "train_tokens_available": cache.n_tokens("train"),
            "epochs": round(trainer.n_training_samples / max(cache.n_tokens("train"), 1), 3),
            "trainer": "sae_lens.SAETrainer",
        }
        write_json(tmp / RECORD, record)
        return {"training_record": RECORD}

    code = ("rsae_utils.sae.train",) + (("rsae_utils.sae.topk",) if spec.trainer == "fast" else ())
    return cached_artifact(out_dir, params, build, code=code, force=force)


def _train_fast(cache: ActivationCache, layer: int, spec: SAESpec, out: Path, metadata: dict[str, Any]) -> dict:
    """Train with :func:`rsae_utils.sae.topk.train_topk` on ``spec.n_tokens`` cached tokens, save in sae-lens's
    format to ``out``; returns the record fields (the same names as the sae-lens path's)."""
    steps = spec.n_tokens // spec.batch_size
    batches = cache.iter_batches(layer, spec.batch_size, seed=spec.batch_seed, exclude_tokens=spec.exclude_tokens)
    # A latent is dead after an eighth of the run without firing (sae-lens's window above; sparsify: 10M tokens).
    threshold = spec.dead_tokens()
    res = train_topk(
        (b for _, b in zip(range(steps), batches)),
        cache.d_model,
        spec.d_sae(cache.d_model),
        spec.k,
        lr=spec.lr,
        seed=spec.seed,
        dead_tokens_threshold=threshold,
        lr_warmup_steps=spec.lr_warm_up_steps,
        log_every=spec.log_every,
    )
    to_sae_lens(res, metadata).save_model(out)
    n_dead = int((res.tokens_since_fired > threshold).sum())
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
        "cache_dir": str(cache.root),
        "cache_key": cache.manifest["key"],
        "train_tokens_available": cache.n_tokens("train"),
        "epochs": round(res.tokens / max(cache.n_tokens("train"), 1), 3),
        "trainer": "rsae_utils.sae.topk (fast TopK: FVU + AuxK)",
    }


def _resolve(model: Any) -> Any:
    """A model given directly, or made by a zero-argument callable (a HookedTransformer is callable too: it has cfg)."""
    return model if hasattr(model, "cfg") else model()


class _RecordingMultiTrainer(MultiSAETrainer):
    """sae-lens's lockstep multi-SAE trainer whose per-SAE trainers record loss curves like ``_RecordingTrainer``.

    The per-SAE trainers are rebuilt exactly as sae-lens builds them (checkpointing and final saving left to the
    coordinator), only as the recording subclass.
    """

    def __init__(self, *args: Any, log_every: int = 10, **kwargs: Any):
        super().__init__(*args, **kwargs)
        per_sae = replace(self.cfg, n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False)
        self.trainers = {
            name: _RecordingTrainer(cfg=per_sae, sae=sae, data_provider=iter(()), log_every=log_every)
            for name, sae in self.saes.items()
        }


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
    only the missing ones are trained. Each SAE's initialisation is seeded as in :func:`train_sae`.

    ``model`` may be a callable returning the model, called only when some layer needs training (with
    ``d_model`` given, nothing is loaded when every SAE is already there).
    """
    d_model = int(d_model if d_model is not None else _resolve(model).cfg.d_model)
    spec.validate(d_model)
    layers = sorted({int(x) for x in layers})
    tokens = torch.as_tensor(tokens).long().cpu()
    params = {layer: stream_sae_params(tokens, layer, spec, meta, d_model) for layer in layers}
    code = ("rsae_utils.sae.train",)
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
        multi = _RecordingMultiTrainer(
            cfg=trainer_config(spec, n_norm, device=device),
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
                        **_training_record(trainer, spec, d_model, seconds),
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
