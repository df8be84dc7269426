"""Seed stability counted more than one way (notebook 07): shared fractions over live latents, the same-partner
share, and the check for encoder directions collapsing onto one shared component.

Definitions (each per pair of SAEs a, b matched by :func:`rsae_utils.studies.seeds.stability.match_saes`; a latent
is *live* when it fires at least once on the held-out split):

* *shared of all latents* (the paper's count, ``shared``): a's latents whose matched decoder and matched encoder
  cosines both exceed the threshold, over all of a's latents. Dead latents count as not shared.
* *shared of live latents* (``shared_live``): a's latents that are live in a, shared, and whose decoder and encoder
  partners are live in b (live in both SAEs of the pair), over a's live latents.
* *same partner* (``same_partner``, ``same_partner_live``): as above, and the decoder and the encoder matching pick
  the same latent of b. Two matchings pairing a latent with different partners say its directions resemble two
  different latents of b, not that b has that latent.
* *encoder collapse*: the share of the encoder directions' (unit rows') second moment in their top principal
  component, uncentred: the component all directions share is their mean, so centring would remove what is looked
  for. Unit rows in d dimensions drawn at random put ~1/d there; directions that are a common vector plus small noise
  put ~1. The encoder matching is then redone after projecting the top components of both SAEs out of both SAEs'
  encoder directions (``enc_pc1_removed``): what is left is what tells the latents apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rsae_utils.sae.matching import Assignment, Directions, assign, check_pair, check_threshold
from rsae_utils.studies.seeds.stability import MatchResult, shared_fraction_curve
from rsae_utils.vectors import unit_rows


def _grid(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    grid = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    for t in grid:
        check_threshold(t, "thresholds")
    return grid


def _live(mask: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if mask is None:
        raise ValueError(f"{name} must be a boolean mask of the SAE's {n} latents; got None")
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n,):
        raise ValueError(f"{name} must be a boolean mask of the SAE's {n} latents; got {m.dtype} of shape {m.shape}")
    return m


def _live_partner(partner: np.ndarray, live_b: np.ndarray) -> np.ndarray:
    """(n_a,) bool: the partner in b is live (False where unmatched)."""
    ok = partner >= 0
    out = np.zeros(len(partner), dtype=bool)
    out[ok] = live_b[partner[ok]]
    return out


def live_curves(
    result: MatchResult, live_a: np.ndarray, live_b: np.ndarray, thresholds: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Shared fractions of live latents at each threshold (see the module docstring), each a (T,) array:
    ``shared_live`` and ``same_partner_live`` (NaN when a has no live latent)."""
    live_a = _live(live_a, result.n_a, "live_a")
    live_b = _live(live_b, result.n_b, "live_b")
    grid = _grid(thresholds)
    # Counted latents: live in a, and both partners live in b.
    both = live_a & _live_partner(result.dec.partner, live_b) & _live_partner(result.enc.partner, live_b)
    with np.errstate(invalid="ignore"):  # NaN (unmatched) compares False
        shared = (result.dec.cos[None, :] > grid[:, None]) & (result.enc.cos[None, :] > grid[:, None])
    n_live = int(live_a.sum())
    if n_live == 0:
        nan = np.full(len(grid), np.nan)
        return {"shared_live": nan, "same_partner_live": nan.copy()}
    return {
        "shared_live": (shared & both[None, :]).sum(1) / n_live,
        "same_partner_live": (shared & (both & result.same_partner)[None, :]).sum(1) / n_live,
    }


def top_pc(x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(share, component) of the rows of ``x`` (n, d), unit-normalised first: the top right singular vector of the
    uncentred matrix and the share of the summed squared norms (n) along it, sigma_1^2 / sum sigma_i^2."""
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x must be a non-empty 2-D matrix of directions; got shape {tuple(x.shape)}")
    u = unit_rows(x.double())
    _, s, vh = torch.linalg.svd(u, full_matrices=False)
    total = float((s**2).sum())
    return (float(s[0] ** 2) / total if total > 0 else float("nan")), vh[0].float()


def remove_components(x: torch.Tensor, components: Sequence[torch.Tensor]) -> torch.Tensor:
    """Rows of ``x`` with the span of ``components`` (each (d,)) projected out, unit-normalised again (a row lying
    in that span becomes zero: cosine 0 with everything)."""
    if not components:
        return unit_rows(x.float())
    # An orthonormal basis of the components' span; a component (near) collinear with another adds no dimension.
    u, s, _ = torch.linalg.svd(torch.stack([c.double() for c in components], dim=1), full_matrices=False)
    basis = u[:, s > 1e-6 * s[0]]
    y = x.double() - (x.double() @ basis) @ basis.T
    # Below this norm (relative to the unit rows) what is left is round-off, not a direction.
    y[y.norm(dim=1) < 1e-6] = 0.0
    return unit_rows(y).float()


def encoder_without_top_pc(a: Directions, b: Directions) -> Assignment:
    """The encoder matching of a to b after projecting the top principal components of both SAEs' encoder
    directions out of both (one SVD per SAE; the same projection for both, so their cosines stay comparable)."""
    check_pair(a, b)
    comps = [top_pc(a.enc)[1], top_pc(b.enc)[1]]
    return assign(remove_components(a.enc, comps), remove_components(b.enc, comps))


def removed_curves(result: MatchResult, enc_removed: Assignment, thresholds: Sequence[float] | np.ndarray) -> dict:
    """At each threshold, fractions of a's latents (all latents): ``enc_pc1_removed``, matched encoder cosine above
    it after the top components are removed; ``shared_pc1_removed``, that and the (unchanged) decoder match above."""
    grid = _grid(thresholds)
    if len(enc_removed.cos) != result.n_a:
        raise ValueError(f"enc_removed must match the result's {result.n_a} latents; got {len(enc_removed.cos)}")
    with np.errstate(invalid="ignore"):
        enc = enc_removed.cos[None, :] > grid[:, None]
        dec = result.dec.cos[None, :] > grid[:, None]
    return {"enc_pc1_removed": enc.mean(1), "shared_pc1_removed": (enc & dec).mean(1)}


def pair_rows(
    res: MatchResult,
    seed_a: int,
    seed_b: int,
    live_a: np.ndarray,
    live_b: np.ndarray,
    dir_a: Directions,
    dir_b: Directions,
    thresholds: Sequence[float],
) -> list[dict[str, Any]]:
    """One row per threshold of one matched pair (a = seed_a): the fractions of :func:`shared_fraction_curve` (all
    of a's latents), of :func:`live_curves` (a's live latents) and of :func:`removed_curves` (the encoder matching
    redone without the top principal components)."""
    c = shared_fraction_curve(res, thresholds)
    live = live_curves(res, live_a, live_b, c.thresholds)
    removed = removed_curves(res, encoder_without_top_pc(dir_a, dir_b), c.thresholds)
    return [
        {
            "seed_a": seed_a,
            "seed_b": seed_b,
            "threshold": round(float(t), 6),
            "shared": c.shared[i],
            "same_partner": c.shared_same_partner[i],
            "dec": c.dec[i],
            "enc": c.enc[i],
            "maxcos_shared": c.maxcos_shared[i],
            **{name: float(v[i]) for name, v in {**live, **removed}.items()},
        }
        for i, t in enumerate(c.thresholds)
    ]
