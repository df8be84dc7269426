"""Parameters of notebook 07_seed_stability (Paulo & Belrose 2025 on notebook 03's activation caches).

``default`` is sized for ~10 minutes on a 2-core CPU: 3 variants x 4 cells (TopK at R 2 and 4 with k = 32, and at
k 16 and 32 with R = 2; ReLU + L1 at R = 2, L0 ~ 32) x 3 seeds, 61k tokens each (as notebook 03), plus the L1
calibration's short runs and the toy part. ``paper`` names Paulo & Belrose's settings (R = 64, k from 32, TopK and
ReLU at every cell, 9 seeds); it needs notebook 03's caches *with a training split* at the chosen layer
(notebook 03's paper profile streams instead: rerun it with ``train_from='cache'`` and as many
``n_train_windows`` as the disk allows, ~1 GB per million tokens per layer for Pythia-70m in float16) and a GPU.
"""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import (
    Config,
    Notebook,
    Param,
    is_float,
    is_int,
    list_of,
    one_of,
    optional,
    register,
)
from rsae_utils.params.nb03_sae import TRAINERS
from rsae_utils.subject.variants import VARIANTS

_VARIANTS = ["trained", "rerandomized_incl_emb", "step0"]


def _check_07(cfg: Config) -> None:
    for name in ("train_tokens", "calib_tokens"):
        if cfg[name] < cfg.batch_size:
            raise ParameterError(f"parameter {name!r} must be >= batch_size ({cfg.batch_size}); got {cfg[name]}")
    if cfg.calib_tokens > cfg.train_tokens:
        raise ParameterError(
            f"parameter 'calib_tokens' must be <= train_tokens ({cfg.train_tokens}); got {cfg.calib_tokens}"
        )
    if cfg.threshold not in cfg.thresholds:
        raise ParameterError(f"parameter 'threshold' must be one of 'thresholds' {cfg.thresholds}; got {cfg.threshold}")


def _grid(n: int) -> list[float]:
    return [round(i / n, 6) for i in range(n + 1)]


register(
    "07_seed_stability",
    Notebook(
        title="Seed stability of SAEs on trained and random transformers (Paulo & Belrose 2025)",
        params=[
            Param(
                "variants",
                _VARIANTS,
                _VARIANTS[:2],
                _VARIANTS,
                list_of(
                    one_of(["trained", "rerandomized_incl_emb", "rerandomized_excl_emb", "step0", "control"]),
                    unique=True,
                ),
                "model variants (their caches come from notebook 03; the default leaves step-0 out for time: the "
                "claims read the trained model's cells, and the re-randomized model is the random one they compare)",
            ),
            Param("layer", 1, 9, 3, is_int(0), "residual-stream layer; must be one of notebook 03's cached layers"),
            Param(
                "seeds",
                [0, 1, 2],
                [0, 1, 2],
                [0, 1, 2, 3, 4, 5, 6, 7, 8],
                list_of(is_int(0), min_len=3, unique=True),
                "SAE initialisation seeds (the first is the reference of the per-latent analyses; the paper: 9; "
                "default: 3, 3 pairs per cell, down from 4 to pay for notebook 03's 4x longer training)",
            ),
            Param(
                "data_seed",
                0,
                0,
                0,
                is_int(0),
                "seed of the batch order, the same for every SAE (only the init differs)",
            ),
            Param(
                "expansions",
                [1, 2],
                [2, 4],
                [16, 32, 64],
                list_of(is_int(1, 256), unique=True),
                "widths R compared (TopK, k = base_k)",
            ),
            Param(
                "ks",
                [4, 8],
                [16, 32],
                [32, 64, 128],
                list_of(is_int(1), unique=True),
                "TopK k values compared (R = base_expansion)",
            ),
            Param("base_expansion", 2, 2, 64, is_int(1, 256), "R of the cell where TopK meets ReLU + L1"),
            Param("base_k", 8, 32, 32, is_int(1), "k of that cell (the ReLU SAE's target L0)"),
            Param(
                "relu_cells",
                "base",
                "base",
                "all",
                one_of(["base", "all", "none"]),
                "ReLU + L1 SAEs at the base cell only, at every TopK cell, or none",
            ),
            Param(
                "train_tokens",
                3072,
                61_440,
                100_000_000,
                is_int(1),
                "tokens each SAE trains on (epochs over notebook 03's cached training split)",
            ),
            Param(
                "topk_trainer",
                "sae-lens",
                "sae-lens",
                "sae-lens",
                one_of(list(TRAINERS)),
                "trainer of the TopK cells: 'sae-lens' (its SAETrainer, as the ReLU + L1 cells, which only it trains) "
                "or 'fast' (the paper's sparsify rule, FVU + AuxK, as notebook 03's SAEs; ~2x faster here, but at the "
                "default's 61k tokens its seeds share no latent at cos > 0.7, against ~3% with sae-lens's)",
            ),
            Param("batch_size", 256, 512, 4096, is_int(1), "SAE training batch, tokens"),
            Param("lr", 3e-3, 2e-3, 1.4e-4, is_float(0.0, 1.0), "Adam learning rate (as notebook 03)"),
            Param("l1_start", 5.0, 5.0, 5.0, is_float(1e-6), "ReLU SAE: first L1 coefficient of the calibration"),
            Param("calib_tokens", 3072, 20_480, 10_000_000, is_int(1), "tokens of each short calibration run"),
            Param(
                "calib_tol",
                0.1,
                0.1,
                0.1,
                is_float(0.0, 1.0),
                "calibration stops when a short run's L0 is within this fraction of the target",
            ),
            Param("calib_max_iter", 6, 6, 8, is_int(1, 20), "most short runs per calibration"),
            Param(
                "thresholds",
                _grid(20),
                _grid(20),
                _grid(20),
                list_of(is_float(-1.0, 1.0), unique=True),
                "cosine thresholds of the shared-fraction curve",
            ),
            Param(
                "threshold",
                0.7,
                0.7,
                0.7,
                is_float(-1.0, 1.0),
                "the threshold of the tables (0.7 in the authors' code)",
            ),
            Param("top_n", 10, 20, 20, is_int(1), "strongest activations per latent for its token entropy"),
            Param("toy_n_features", 64, 512, 512, is_int(2), "toy: ground-truth features (notebook 02's world)"),
            Param("toy_d_model", 32, 256, 256, is_int(2), "toy: data dimension"),
            Param("toy_dict_size", 128, 1024, 1024, is_int(2), "toy: SAE latents"),
            Param(
                "toy_l1",
                0.3,
                0.32,
                0.32,
                optional(is_float(0.0)),
                "toy: L1 coefficient (notebook 02's best at 1024 latents, raw and MLP data); None skips the toy part",
            ),
            Param("toy_steps", 300, 900, 20_000, is_int(1), "toy: optimiser steps"),
            Param("toy_lr", 1e-2, 5e-3, 1e-3, is_float(0.0, 1.0), "toy: Adam learning rate (as notebook 02)"),
            Param("toy_batch", 64, 256, 256, is_int(1), "toy: samples per step"),
            Param(
                "replicate_seeds",
                [0, 1],
                [0, 1],
                [0, 1, 2],
                list_of(is_int(0), min_len=2, unique=True),
                "seeds of notebook 03's SAE retrained at 'layer' for the between-seed spread of the headline numbers "
                "(notebook 03's sae_seed is reused, not retrained; default: 2, as notebooks 06 and 09, since each "
                "replicate trains notebook 03's 262k tokens)",
            ),
            Param(
                "replicate_variants",
                list(VARIANTS),
                list(VARIANTS),
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "variants whose notebook-03 SAE gets seed replicates",
            ),
            Param("threads", 1, 0, 0, is_int(0, 1024), "torch intra-op threads (0: torch's default)"),
        ],
        checks=[_check_07],
        after=["03_sae_training"],
    ),
)
