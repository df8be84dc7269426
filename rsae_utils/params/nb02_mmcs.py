"""Parameters of notebook 02_mmcs_goldilocks."""

from __future__ import annotations

import torch

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import (
    Config,
    Notebook,
    Param,
    is_bool,
    is_float,
    is_int,
    list_of,
    one_of,
    optional,
    register,
)


def _l1_grid(lo: float, hi: float, n: int) -> list[float]:
    return [float(f"{10 ** (lo + (hi - lo) * i / (n - 1)):.6g}") for i in range(n)]


def _check_02(cfg: Config) -> None:
    if cfg.mean_active * 2 * (1 - cfg.decay) / (1 - cfg.decay**cfg.n_features) > 1:
        raise ParameterError(
            f"parameter 'mean_active' is too large for decay {cfg.decay} and {cfg.n_features} features "
            f"(a feature's probability would exceed 1); got {cfg.mean_active}"
        )
    if cfg.emb_rows and cfg.emb_eval_rows >= cfg.emb_rows:
        raise ParameterError(
            f"parameter 'emb_eval_rows' must be below 'emb_rows' ({cfg.emb_rows}: the rest are the training rows); "
            f"got {cfg.emb_eval_rows}"
        )
    if cfg.trend_seeds is not None and not set(cfg.trend_seeds) <= set(cfg.seeds):
        raise ParameterError(
            f"parameter 'trend_seeds' must be a subset of 'seeds' {list(cfg.seeds)}; got {list(cfg.trend_seeds)}"
        )
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("parameter 'device' is 'cuda' but no CUDA device is visible; allowed: 'cpu', 'auto'")


register(
    "02_mmcs_goldilocks",
    Notebook(
        title="MMCS Goldilocks zone of L1 SAEs on synthetic sparse data",
        params=[
            Param("n_features", 64, 512, 512, is_int(2, 100_000), "ground-truth features G"),
            Param("d_model", 32, 256, 256, is_int(2, 100_000), "data dimension h"),
            Param("mean_active", 5.0, 5.0, 5.0, is_float(0.01, 1000.0), "mean number of active features per sample"),
            Param("decay", 0.99, 0.99, 0.99, is_float(0.5, 1.0), "frequency decay lambda: p_i ~ lambda**i"),
            Param("mlp_ratio", 4, 4, 4, is_int(1, 64), "hidden width of the random MLP = mlp_ratio x d_model"),
            Param("world_seed", 0, 0, 0, is_int(0, 2**31 - 1), "seed of the features, correlations and MLP"),
            Param(
                "conditions",
                ["raw", "mlp", "gaussian"],
                ["raw", "mlp", "gaussian"],
                ["raw", "mlp", "gaussian"],
                list_of(one_of(["raw", "mlp", "gaussian"]), unique=True),
                "data conditions: raw, random MLP, Gaussian control",
            ),
            Param(
                "dict_sizes",
                [64, 128],
                [512, 1024],
                [512, 1024, 2048, 4096],
                list_of(is_int(2, 1 << 20), unique=True),
                "SAE dictionary sizes (one line each)",
            ),
            Param(
                "l1_values",
                _l1_grid(-2, 1, 5),
                _l1_grid(-1.5, 0.5, 5),
                _l1_grid(-3, 2, 21),
                list_of(is_float(1e-8, 1e6), min_len=2, unique=True),
                "L1 coefficients (log-spaced grid)",
            ),
            Param(
                "seeds",
                [0, 1],
                [0, 1],
                [0, 1, 2, 3, 4],
                list_of(is_int(0, 2**31 - 1), unique=True),
                "seeds: each draws its own data stream and SAE initialisation (default: 2, down from 4 to pay for "
                "notebook 03's 4x longer training; at the best L1 three seeds' MMCS spanned 0.010-0.012)",
            ),
            Param(
                "trend_seeds",
                None,
                [0],
                None,
                optional(list_of(is_int(0, 2**31 - 1), unique=True)),
                "seeds of the dictionaries below the largest, a subset of 'seeds' (None: all): those show only the "
                "trend with the dictionary size, while the claims read the largest with every seed",
            ),
            Param("steps", 150, 900, 20_000, is_int(1, 10_000_000), "optimiser steps (one fresh batch each)"),
            Param("lr", 1e-2, 5e-3, 1e-3, is_float(1e-7, 1.0), "Adam learning rate"),
            Param(
                "adam_beta2",
                0.99,
                0.99,
                0.999,
                is_float(0.0, 0.999999),
                "Adam beta2 (0.99 learns rare features much faster than PyTorch's 0.999)",
            ),
            Param("batch", 64, 256, 256, is_int(1, 1 << 20), "samples per step"),
            Param("decay_frac", 0.2, 0.2, 0.0, is_float(0.0, 1.0), "final share of steps with linear lr decay to 0"),
            Param("n_eval", 1024, 8192, 16384, is_int(16, 10_000_000), "held-out samples for L0, FVU and dead latents"),
            # The explained-variance-against-sparsity frontier: the toy SAEs above plus a sweep on real vectors.
            Param(
                "emb_model",
                "tiny-random",
                "smollm2-135m",
                "smollm2-135m",
                one_of(["smollm2-135m", "tiny-random"]),
                "model whose token-embedding rows are the real vectors of the frontier (the authors: Pythia, GloVe)",
            ),
            Param(
                "emb_rows",
                2048,
                0,
                0,
                is_int(0, 10_000_000),
                "embedding rows used, a random subset (0: all; SmolLM2 has 49,152)",
            ),
            Param(
                "emb_eval_rows", 512, 4096, 8192, is_int(16, 10_000_000), "of those, rows held out for EV and sparsity"
            ),
            Param(
                "emb_l1_values",
                _l1_grid(-1.5, 0.5, 3),
                _l1_grid(-1, 0, 4),
                _l1_grid(-3, 2, 21),
                list_of(is_float(1e-8, 1e6), min_len=2, unique=True),
                "L1 coefficients of the embedding SAEs (default: the part of the toy grid where they are neither "
                "dense nor dead, finer)",
            ),
            Param(
                "emb_dict_ratios",
                [2],
                [2],
                [2, 4, 8, 16],
                list_of(is_int(1, 1024), unique=True),
                "embedding SAE sizes as multiples of the embedding width (the toy sizes are 2x..16x of d_model)",
            ),
            Param(
                "emb_seeds",
                [0],
                [0],
                [0, 1, 2, 3, 4],
                list_of(is_int(0, 2**31 - 1), unique=True),
                "seeds of the embedding SAEs (initialisation and batch order)",
            ),
            Param(
                "emb_steps",
                150,
                120,
                20_000,
                is_int(1, 10_000_000),
                "optimiser steps of the embedding SAEs (same lr, batch, beta2 and decay as the toy SAEs)",
            ),
            Param(
                "emb_gaussian",
                True,
                True,
                True,
                is_bool(),
                "also train on a Gaussian with the embedding rows' mean and full covariance (their control)",
            ),
            Param(
                "device", "cpu", "cpu", "auto", one_of(["cpu", "cuda", "auto"]), "where to train (auto: cuda if any)"
            ),
            Param("use_cache", True, True, True, is_bool(), "reuse a finished sweep with the same parameters and code"),
            Param(
                "threads",
                1,
                0,
                0,
                is_int(0, 1024),
                "torch intra-op threads for the sweep (0: torch's default, one per core; 1 is faster for tiny sweeps)",
            ),
            Param(
                "seeds_per_program",
                0,
                0,
                1,
                is_int(0, 1_000_000),
                "seeds trained together in one batched program (0: all; 1 bounds memory at paper scale)",
            ),
        ],
        checks=[_check_02],
    ),
)
