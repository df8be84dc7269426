"""sae-lens's side of SAE training: its training SAEs per architecture, its trainer settings for a spec, and its
trainers made to record loss curves (wandb is off, so nothing else would). Used by the ``sae-lens`` trainer
(:mod:`rsae_utils.sae.trainers`) and by streamed training (:func:`rsae_utils.sae.train.train_saes_streaming`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainStepOutput
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.multi_sae_trainer import MultiSAETrainer
from sae_lens.training.sae_trainer import SAETrainer

from rsae_utils.sae.spec import RELU, TOPK, SAESpec

# sae-lens's (training SAE, its config) per architecture; the architecture's knob (k, l1_coefficient) goes in.
TRAINING_SAES = {
    TOPK: (TopKTrainingSAE, TopKTrainingSAEConfig),
    RELU: (StandardTrainingSAE, StandardTrainingSAEConfig),
}


def make_training_sae(spec: SAESpec, d_model: int, metadata: dict[str, Any] | None = None):
    """A freshly initialised sae-lens training SAE for ``spec`` (uses the global torch RNG: seed first)."""
    sae_cls, cfg_cls = TRAINING_SAES[spec.architecture]
    knob = spec.arch.knob
    return sae_cls(
        cfg_cls(
            **{knob: getattr(spec, knob)},
            d_in=d_model,
            d_sae=spec.d_sae(d_model),
            dtype="float32",
            device="cpu",
            normalize_activations=spec.normalize_activations,
            metadata=SAEMetadata(**(metadata or {})),
        )
    )


class RecordingTrainer(SAETrainer):
    """sae-lens's trainer, noting the losses every ``log_every`` steps in ``curve``."""

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


class RecordingMultiTrainer(MultiSAETrainer):
    """sae-lens's lockstep multi-SAE trainer whose per-SAE trainers record loss curves like ``RecordingTrainer``.

    The per-SAE trainers are rebuilt exactly as sae-lens builds them (checkpointing and final saving left to the
    coordinator), only as the recording subclass.
    """

    def __init__(self, *args: Any, log_every: int = 10, **kwargs: Any):
        super().__init__(*args, **kwargs)
        per_sae = replace(self.cfg, n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False)
        self.trainers = {
            name: RecordingTrainer(cfg=per_sae, sae=sae, data_provider=iter(()), log_every=log_every)
            for name, sae in self.saes.items()
        }


def trainer_config(
    spec: SAESpec, d_model: int, n_batches_for_norm_estimate: int, device: str = "cpu"
) -> SAETrainerConfig:
    """sae-lens's trainer settings for ``spec`` on ``d_model`` inputs (constant lr, wandb off, the spec's
    dead-latent window)."""
    return SAETrainerConfig(
        total_training_samples=int(spec.n_tokens),
        train_batch_size_samples=int(spec.batch_size),
        lr=spec.lr,
        lr_end=spec.lr,
        lr_warm_up_steps=spec.lr_warm_up_steps,
        device=device,
        dead_feature_window=spec.dead_window_steps(d_model),
        feature_sampling_window=spec.dead_window_steps(d_model),
        n_batches_for_norm_estimate=max(1, int(n_batches_for_norm_estimate)),
        logger=LoggingConfig(log_to_wandb=False),
    )


def training_record(trainer: RecordingTrainer, spec: SAESpec, d_model: int, seconds: float) -> dict[str, Any]:
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
