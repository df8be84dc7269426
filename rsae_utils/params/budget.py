"""What a notebook-03 run will take, estimated from its parameters before anything loads: disk, host memory, GPU
memory and hours. Printed before a ``paper`` or ``gpu`` run starts; a run that cannot fit the machine it is on is
refused (:func:`check_budget`), naming the parameters to change.

Rough by design (within ~2x): the transformer's size comes from its shape (12 d_model^2 per layer plus the
embeddings), training cost from the TopK SAE's dense encoder and decoder (6 FLOPs per weight per token, forward and
backward), and time from an assumed sustained throughput (:data:`FLOPS`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import torch

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import Config
from rsae_utils.paths import work_dir

VOCAB = 50_304  # Pythia's padded vocabulary (SmolLM2's 49,152 is close enough for an estimate)
# Sustained FLOP/s assumed for the hour estimate: fp32 training on one data-centre GPU, and one CPU core.
FLOPS = {"cuda": 3e13, "mps": 3e12, "cpu": 5e10}
BYTES_PER_TOKEN_ID = 40  # a token id in tokenize_windows' Python lists (pointer + int object), before the tensor


def human_bytes(n: float) -> str:
    """``n`` bytes with a unit that fits (kB, MB, GB, TB; powers of 1000): a 3 MB cache is not "0.0 GB"."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


@dataclass(frozen=True)
class Budget:
    disk_bytes: int
    host_bytes: int
    gpu_bytes: int
    hours: float

    def text(self, cfg: Config) -> str:
        gpu = f"~{human_bytes(self.gpu_bytes)} GPU memory" if cfg.device != "cpu" else "no GPU (device='cpu')"
        return (
            f"[budget] 03_sae_training ({cfg.profile}): ~{human_bytes(self.disk_bytes)} disk, "
            f"~{human_bytes(self.host_bytes)} host memory, {gpu}, ~{self.hours:,.1f} h on {cfg.device} "
            f"(rough; rsae_utils.params.budget)"
        )


def model_params(n_layers: int, d_model: int) -> int:
    return 12 * n_layers * d_model**2 + 2 * VOCAB * d_model


def sae_bytes(cfg: Config, d_model: int) -> int:
    """One SAE on disk: encoder and decoder (float32) plus biases."""
    d_sae = cfg.expansion * d_model
    return 4 * (2 * d_sae * d_model + d_sae + d_model)


def estimate_03(cfg: Config, n_layers: int, d_model: int, cache_bytes: int) -> Budget:
    """Disk, host memory, GPU memory and hours of a notebook-03 run of ``cfg`` on a model of this shape."""
    n_var, n_lay = len(cfg.variants), len(cfg.layers)
    d_sae = cfg.expansion * d_model
    disk = cache_bytes + n_var * n_lay * sae_bytes(cfg, d_model)
    weights = 4 * model_params(n_layers, d_model)
    windows = (cfg.n_train_windows + cfg.n_test_windows) * cfg.ctx
    corpus_chars = cfg.max_corpus_chars or 4 * windows  # an hf: corpus stops near what the windows need
    host = 2 * weights + windows * (BYTES_PER_TOKEN_ID + 8) + 2 * corpus_chars + n_lay * sae_bytes(cfg, d_model)
    # GPU: the trained model and one variant; per layer trained in lockstep, the SAE with its gradient and Adam's
    # two moments; one batch's pre-activations and their gradient; one forward's residual streams.
    training = n_lay * 4 * sae_bytes(cfg, d_model) + 3 * 4 * cfg.batch_size * d_sae
    forward = 4 * cfg.harvest_batch * cfg.ctx * (n_lay * d_model + 4 * d_model + VOCAB)
    gpu = 2 * weights + training + forward + int(0.5e9)  # + the CUDA context
    # Time: forwards over every training and held-out token (streamed training re-runs the model each epoch),
    # then the SAEs' training.
    tokens_fwd = windows if cfg.train_from == "cache" else cfg.n_test_windows * cfg.ctx + cfg.train_tokens
    sae_flops = n_lay * 6 * 2 * d_model * d_sae * cfg.train_tokens
    flops = n_var * (2 * model_params(n_layers, d_model) * tokens_fwd + sae_flops)
    hours = flops / FLOPS.get(cfg.device, FLOPS["cpu"]) / 3600
    return Budget(disk, int(host), int(gpu), hours)


def host_memory_bytes() -> int:
    """Physical memory of this machine (0 when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def free_disk_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the disk that holds ``path``."""
    return int(shutil.disk_usage(path).free)


def gpu_memory_bytes(device: str) -> int | None:
    """Memory of the GPU the run would use; None when none is visible here (the check is then left to the run)."""
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory)
    return None


def check_budget(cfg: Config, budget: Budget, existing_cache_bytes: int = 0) -> None:
    """Refuse a run whose disk, host memory or GPU memory need exceeds what this machine has."""
    root = work_dir(cfg.profile)
    free = free_disk_bytes(root) + existing_cache_bytes
    if budget.disk_bytes > 0.95 * free:
        hints = ["train_from='stream' (SAEs train on activations made on the fly)"] if cfg.train_from == "cache" else []
        hints += ["fewer windows or layers"] + (["cache_dtype='float16'"] if cfg.cache_dtype == "float32" else [])
        raise ParameterError(
            f"parameter 'n_train_windows' / 'train_from': the activation caches and SAEs would take "
            f"{human_bytes(budget.disk_bytes)} ({len(cfg.variants)} variants x windows x {cfg.ctx} tokens x "
            f"{len(cfg.layers)} layers, {cfg.cache_dtype}) but {human_bytes(free)} is free under {root}; use "
            f"{', or '.join(hints)}"
        )
    ram = host_memory_bytes()
    if ram and budget.host_bytes > 0.9 * ram:
        raise ParameterError(
            f"parameters 'n_train_windows' / 'max_corpus_chars' / 'ctx': the run needs "
            f"~{human_bytes(budget.host_bytes)} of host memory but this machine has {human_bytes(ram)}; use fewer "
            "windows or a smaller corpus cap"
        )
    vram = gpu_memory_bytes(cfg.device)
    if vram is not None and budget.gpu_bytes > 0.9 * vram:
        raise ParameterError(
            f"parameters 'expansion' / 'layers' / 'batch_size': the run needs ~{human_bytes(budget.gpu_bytes)} of "
            f"GPU memory but the GPU has {human_bytes(vram)}; use a smaller expansion or batch, or fewer layers"
        )
