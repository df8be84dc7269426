"""A Gaussian control on real residuals (notebook 06, issue 22's part 4): the same SAE trained on a Gaussian with
the residual's mean and covariance.

A TopK SAE reconstructs part of any cloud, sparse or not: a Gaussian whose variance sits in a few directions is
easy for k active latents. The SAE's explained variance on real residuals minus the one it reaches on their
Gaussian (same mean, same covariance, as many training rows, the same spec, batches, budget and seed) is what
sparse structure adds. Where a random variant's SAE does no better than on its Gaussian, its latents find no
sparse structure, whatever auto-interp says of them: the paper's toy argument, on real data.

The Gaussian rows are drawn once, as many as the real training rows, so the SAE sees each the same number of times
as the real one sees its rows; the held-out Gaussian rows are as many as the real held-out rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from rsae_utils.sae.cache import ActivationCache, token_mask
from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.sae.spec import SAESpec
from rsae_utils.sae.topk import to_sae_lens, train_topk
from rsae_utils.sae.trainers import fast_options
from rsae_utils.store import cached_artifact, read_json, write_json

CODE = ("rsae_utils.studies.why.gaussian", "rsae_utils.sae.topk", "rsae_utils.sae.metrics")


def fit_gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (d,), factor (d, d)) of rows ``x`` (N, d), with factor @ factor.T the covariance (float64; negative
    eigenvalues of a rank-deficient estimate clipped to 0)."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be (N >= 2, d) rows; got shape {tuple(x.shape)}")
    xd = x.double()
    mean = xd.mean(0)
    xc = xd - mean
    cov = xc.T @ xc / (xd.shape[0] - 1)
    evals, evecs = torch.linalg.eigh(cov)
    return mean, evecs * evals.clamp(min=0).sqrt()


def sample_gaussian(mean: torch.Tensor, factor: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` float32 rows of N(mean, factor factor^T), seeded."""
    z = torch.randn(int(n), factor.shape[1], generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return (mean + z @ factor.T).float()


def row_batches(x: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless batches of rows of ``x``: each epoch a fresh seeded permutation (as the cache's own batches)."""
    gen = torch.Generator().manual_seed(int(seed))
    while True:
        perm = torch.randperm(len(x), generator=gen)
        for lo in range(0, len(x) - batch_size + 1, batch_size):
            yield x[perm[lo : lo + batch_size]]


def fit_rows(x: torch.Tensor, spec: SAESpec) -> Any:
    """The fast trainer's TopK SAE of ``spec`` on rows ``x`` (``spec.n_tokens`` in whole batches), as sae-lens."""
    steps = max(1, spec.n_tokens // spec.batch_size)
    d = x.shape[1]
    res = train_topk(
        itertools.islice(row_batches(x, spec.batch_size, spec.batch_seed), steps),
        d,
        spec.d_sae(d),
        spec.k,
        log_every=spec.log_every,
        **fast_options(SimpleNamespace(d_model=d), spec),
    )
    return to_sae_lens(res)


def gaussian_gap(train_x: torch.Tensor, test_x: torch.Tensor, spec: SAESpec, seed: int = 0) -> dict[str, float]:
    """Explained variance of ``spec``'s SAE trained on a Gaussian with ``train_x``'s mean and covariance, on as
    many held-out Gaussian rows as ``test_x`` has (``test_x`` only sets that count)."""
    mean, factor = fit_gaussian(train_x)
    g_train = sample_gaussian(mean, factor, len(train_x), seed)
    g_test = sample_gaussian(mean, factor, len(test_x), seed + 1)
    sae = fit_rows(g_train, spec)
    rec = reconstruction_metrics(sae, g_test, batch_tokens=512)
    return {"gauss_explained_variance": rec["explained_variance"], "gauss_cos_sim": rec["cos_sim"]}


def gaussian_control(
    cache: ActivationCache,
    layer: int,
    spec: SAESpec,
    out_dir: Path,
    exclude_tokens: tuple[int, ...] = (),
    test_windows: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`gaussian_gap` on ``cache``'s training rows at ``layer`` (boundary tokens left out), the held-out count
    that of the first ``test_windows`` held-out windows; stored once per (cache, layer, spec, seed)."""
    params = {
        "cache": cache.manifest_hash(),
        "layer": int(layer),
        "spec": asdict(spec),
        "exclude": list(exclude_tokens),
        "test_windows": int(test_windows or 0),
        "seed": int(seed),
    }

    def build(tmp: Path) -> None:
        toks = cache.tokens("train")
        x = cache.acts(layer, "train")[token_mask(toks, exclude_tokens)]
        t_toks = cache.tokens("test")[: int(test_windows) if test_windows else None]
        n_test = int(token_mask(t_toks, exclude_tokens).sum())
        write_json(tmp / "metrics.json", gaussian_gap(x, x[:n_test], spec, seed))

    path = cached_artifact(out_dir, params, build, code=CODE)
    return read_json(path / "metrics.json")
