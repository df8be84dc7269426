"""The auto-interp sampling and scoring parameters that notebooks 04 (LLM scorers) and 08 (token-identity scorers)
share: which latents and windows are drawn from an SAE's held-out activations, and how a window is marked and a
token profile read. Each is declared once here (name, check, meaning, and notebook 04's values, delphi's counts in
``paper``); a notebook takes the block and changes only what its own run sizes differently.

Not a notebook table itself (nothing is registered here): ``nb04_autointerp`` and ``nb08_critique`` include it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import Config, Param, is_float, is_int

SAMPLING_PARAMS: tuple[Param, ...] = (
    Param("window_len", 32, 32, 32, is_int(2, 4096), "tokens per example window (the paper: 32)"),
    Param("n_latents", 8, 100, 100, is_int(1), "latents sampled per SAE (the paper: 100)", gpu=100),
    Param(
        "min_examples",
        4,
        40,
        200,
        is_int(1),
        "activating windows a latent needs to be sampled (the paper: 200 in a 10M-token cache)",
    ),
    Param(
        "n_explain",
        2,
        8,
        40,
        is_int(1),
        "explainer windows per latent (the paper: 40; the token profile is read from them)",
    ),
    Param(
        "explain_pool",
        3,
        16,
        100,
        is_int(1),
        "explainer windows are drawn at random from this many top-activating windows",
    ),
    Param("n_bins", 2, 10, 10, is_int(1), "activation-quantile bins of the scoring positives (the paper: 10)"),
    Param("per_bin", 1, 10, 10, is_int(1), "scoring positives drawn per bin (the paper: 10)"),
    Param("n_negatives", 3, 50, 100, is_int(0), "non-activating scoring windows per latent (the paper: ~100)"),
    Param(
        "mark_frac",
        0.3,
        0.3,
        0.3,
        is_float(0.0, 1.0),
        "a token is marked active when its activation >= mark_frac x the window max (the paper: 0.3)",
    ),
    Param("top_k_tokens", 10, 10, 10, is_int(1), "token baseline: top tokens by activation mass it keeps"),
    Param(
        "single_token_threshold",
        0.9,
        0.9,
        0.9,
        is_float(0.0, 1.0),
        "a latent is single-token when one token id holds at least this share of its explainer activation mass",
    ),
)
SAMPLING_NAMES = tuple(p.name for p in SAMPLING_PARAMS)


def sampling_params(own: Mapping[str, Mapping[str, Any]] | None = None) -> list[Param]:
    """The shared block, in its order; ``own[name]`` replaces fields of that parameter for one notebook (its
    profile values, a tighter check, a sharper meaning), e.g. ``{"n_bins": {"smoke": 2, "default": 5}}``."""
    own = dict(own or {})
    unknown = sorted(set(own) - set(SAMPLING_NAMES))
    if unknown:
        raise ValueError(f"{unknown} are not shared sampling parameters; those are {list(SAMPLING_NAMES)}")
    return [replace(p, **own.get(p.name, {})) for p in SAMPLING_PARAMS]


def check_sampling(cfg: Config) -> None:
    """The cross-parameter rules of the block: enough windows for the explainer and for every quantile bin."""
    if cfg.explain_pool < cfg.n_explain:
        raise ParameterError(f"parameter 'explain_pool' must be >= n_explain ({cfg.n_explain}); got {cfg.explain_pool}")
    if cfg.min_examples < cfg.n_explain + cfg.n_bins:
        raise ParameterError(
            f"parameter 'min_examples' must be >= n_explain + n_bins ({cfg.n_explain + cfg.n_bins}) so every sampled "
            f"latent has explainer examples and one window per quantile bin; got {cfg.min_examples}"
        )
