"""Small vector helpers shared by the stages (imports no subpackage of ours, so any stage may import it)."""

from __future__ import annotations

import torch

# Below this norm a row counts as zero: it stays zero (cosine 0 with everything) instead of becoming NaN.
ZERO_NORM = 1e-12


def unit_rows(w: torch.Tensor, eps: float = ZERO_NORM) -> torch.Tensor:
    """Each row (last dimension) of ``w`` divided by its norm, the norm clamped at ``eps`` from below (a new tensor;
    :func:`rsae_utils.sae.topk.unit_rows_` is the trainer's in-place renormalisation, with another epsilon)."""
    return w / w.norm(dim=-1, keepdim=True).clamp_min(eps)
