"""Parameters of notebook 05_roc_entropy."""

from __future__ import annotations

from rsae_utils.params.core import Notebook, Param, is_int, register

register(
    "05_roc_entropy",
    Notebook(
        title="ROC curves (paper Fig. 1), AUROC and token entropy against layer, token-baseline gap, latent browser",
        params=[
            Param("n_boot", 20, 100, 100, is_int(2), "bootstrap resamples of each pooled ROC curve (the paper: 100)"),
            Param(
                "n_grid", 101, 101, 101, is_int(11, 10_001), "FPR grid points of the bootstrap band (the paper: 101)"
            ),
            Param("browser_latents", 5, 30, 100, is_int(1), "latents per SAE shown in the latent browser"),
            Param("browser_examples", 3, 10, 20, is_int(1), "top windows shown per latent in the browser"),
            Param("seed", 0, 0, 0, is_int(0), "seed of the bootstrap"),
        ],
        after=["04_autointerp"],
    ),
)
