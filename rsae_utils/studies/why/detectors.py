"""Token-detector latents: how many of an SAE's latents point at a token's own direction (notebook 06, issue 22's
part 5).

A token's direction at a layer is its mean residual minus the mean of all residuals (tokens seen at least
``min_count`` times). A latent is a token detector when its decoder direction has cosine above ``threshold`` with
one of them. The control recomputes the directions with the token labels shuffled among the same positions: those
"directions" are means of random groups of residuals, so whatever a decoder matches there comes from the
residual's shape (its top principal directions, its offset), not from tokens. The share beyond the control is
what the SAE learnt about tokens.
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_COUNT = 8


def token_directions(
    acts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, min_count: int = DEFAULT_MIN_COUNT
) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit directions (G, d), their token ids (G,)): each token's mean residual minus the overall mean, for the
    tokens seen at least ``min_count`` times among the kept positions (``mask``; None keeps all)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1; got {min_count}")
    x = acts.reshape(-1, acts.shape[-1]).double()
    t = tokens.reshape(-1).long()
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"tokens has {t.shape[0]} positions; acts have {x.shape[0]}")
    if mask is not None:
        keep = mask.reshape(-1).bool()
        x, t = x[keep], t[keep]
    ids, inv = torch.unique(t, return_inverse=True)
    counts = torch.bincount(inv, minlength=len(ids))
    sums = torch.zeros(len(ids), x.shape[1], dtype=torch.float64).index_add_(0, inv, x)
    means = sums / counts.clamp(min=1)[:, None] - x.mean(0)
    ok = counts >= int(min_count)
    dirs = torch.nn.functional.normalize(means[ok], dim=1)
    return dirs.float(), ids[ok]


def best_cosines(W_dec: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Per latent (rows of ``W_dec``, (d_sae, d)): its decoder direction's largest cosine with ``directions``."""
    dec = torch.nn.functional.normalize(W_dec.float(), dim=1)
    return torch.cat([(dec[i : i + 4096] @ directions.T).amax(1) for i in range(0, len(dec), 4096)])


def detector_share(W_dec: torch.Tensor, directions: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Share of the latents (rows of ``W_dec``, (d_sae, d)) whose decoder direction has cosine above ``threshold``
    with at least one of ``directions``; NaN without directions."""
    if not len(directions):
        return float("nan")
    return float((best_cosines(W_dec, directions) > float(threshold)).float().mean())


def shuffled(tokens: torch.Tensor, mask: torch.Tensor | None, seed: int = 0) -> torch.Tensor:
    """``tokens`` with the labels of the kept positions permuted among themselves (seeded)."""
    flat = tokens.reshape(-1).clone()
    keep = torch.ones_like(flat, dtype=torch.bool) if mask is None else mask.reshape(-1).bool()
    idx = keep.nonzero().squeeze(1)
    perm = torch.randperm(len(idx), generator=torch.Generator().manual_seed(int(seed)))
    flat[idx] = flat[idx[perm]]
    return flat.reshape(tokens.shape)


def direction_sets(
    acts: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(real token directions, their token ids, shuffled-token directions): what :func:`token_detectors` compares a
    decoder with; the same for every SAE of one (cache, layer), so a sweep computes them once."""
    real, ids = token_directions(acts, tokens, mask, min_count)
    ctrl, _ = token_directions(acts, shuffled(tokens, mask, seed), mask, min_count)
    return real, ids, ctrl


def token_detectors(
    W_dec: torch.Tensor,
    acts: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_count: int = DEFAULT_MIN_COUNT,
    seed: int = 0,
    sets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The detector share against real token directions and against shuffled-token ones, and their difference
    (``sets``: :func:`direction_sets`' output, given instead of ``acts`` and ``tokens``)."""
    real, ids, ctrl = sets if sets is not None else direction_sets(acts, tokens, mask, min_count, seed)
    nan = float("nan")
    # each latent's best cosine once per set of directions: the share above the threshold and the median from it
    best = best_cosines(W_dec, real) if len(real) else None
    best_ctrl = best_cosines(W_dec, ctrl) if len(ctrl) else None
    share = float((best > float(threshold)).float().mean()) if best is not None else nan
    control = float((best_ctrl > float(threshold)).float().mean()) if best_ctrl is not None else nan
    return {
        "detector_share": share,
        "detector_control": control,
        "detector_excess": share - control,
        # the threshold-free view: the median latent's best cosine, with real and with shuffled tokens
        "detector_cos_median": float(best.median()) if best is not None else nan,
        "detector_cos_median_control": float(best_ctrl.median()) if best_ctrl is not None else nan,
        "n_token_directions": int(len(ids)),
        "detector_threshold": float(threshold),
    }
