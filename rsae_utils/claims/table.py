"""The claims table: every claim of the three works (PAPER.md), what this run measured, and the verdict of its rule.

:data:`CLAIMS` lists each claim with its source, the paper's number (PAPER.md section), the notebook and tables it
is read from and its reader (``toy_sae``, ``interp``). :func:`build_claims` runs every reader on a figures folder;
a claim whose notebook has not run (a table missing or lacking what the claim needs) gets the verdict ``not run``
naming that notebook, never an exception. :func:`claims_markdown` renders the table with links to the figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

import rsae_utils.claims.interp as I
import rsae_utils.claims.toy_sae as T
import rsae_utils.names as N
from rsae_utils.claims.inputs import Inputs, MissingInput, Options, Result
from rsae_utils.claims.rules import NOT_RUN
from rsae_utils.claims.training import gate

HEAP, HEAP_TOY = "Heap et al. 2025", "Heap et al. 2025 (toy)"
PB, CRIT, OURS = "Paulo & Belrose 2025", "critique (Towards Monosemanticity; comments)", "this project (default run)"
COLUMNS = [
    "id",
    "claim",
    "source",
    "paper",
    "notebook",
    "measure",
    "value",
    "lo",
    "hi",
    "interval_over",
    "range_lo",
    "range_hi",
    "range_over",
    "sae_tokens",
    "settled",
    "verdict",
    "qualifier",
    "reason",
    "figure",
]


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str
    paper: str  # the paper's number or statement, with its PAPER.md section
    notebook: str  # the notebook that writes the inputs
    figure: str  # file name in the figures folder
    inputs: tuple[str, ...]  # tables (CSV stems) read
    read: Callable[[Inputs], Result]


def _c(id, claim, source, paper, figure, inputs, read) -> Claim:  # noqa: A002
    """A claim read from ``inputs`` (registered tables, :mod:`rsae_utils.names`), linking the figure ``figure``;
    its notebook is the one the registry names as their producer (one notebook per claim)."""
    producers = {N.table_spec(n).producer() for n in (*inputs, figure)}
    if len(producers) != 1:
        raise ValueError(f"claim {id!r} reads the tables of several notebooks: {sorted(producers)}")
    return Claim(id, claim, source, paper, producers.pop(), f"{figure}.png", tuple(inputs), read)


CLAIMS: tuple[Claim, ...] = (
    _c(
        "toy-superposition",
        "A random 2-layer ReLU MLP keeps sparse, superposed features visible",
        HEAP_TOY,
        "qualitative (2-D demo figure); PAPER.md §1 Toy experiments",
        N.TOY_SUPERPOSITION,
        (N.TOY_SUPERPOSITION,),
        T.toy_superposition,
    ),
    _c(
        "mmcs-band-raw",
        "An L1 band where the SAE recovers the true features (MMCS near 1), given enough latents",
        HEAP_TOY,
        "MMCS near 1 in a band of L1, 512-4096 latents; PAPER.md §1 Toy experiments",
        N.MMCS,
        (N.MMCS,),
        partial(T.mmcs_band, condition="raw"),
    ),
    _c(
        "mmcs-band-mlp",
        "The band survives a random 2-layer MLP",
        HEAP_TOY,
        "the band remains after a random MLP; PAPER.md §1 Toy experiments",
        N.MMCS,
        (N.MMCS,),
        partial(T.mmcs_band, condition="mlp"),
    ),
    _c(
        "mmcs-control",
        "A Gaussian control (data's mean and std) has no band: MMCS stays low",
        HEAP_TOY,
        "control condition of the sweep; PAPER.md §1 Toy experiments",
        N.MMCS,
        (N.MMCS,),
        T.mmcs_control,
    ),
    _c(
        "frontier-toy",
        "SAEs reach a better explained-variance/sparsity frontier on sparse toy data than on its Gaussian control",
        HEAP_TOY,
        "frontiers of sparse, MLP and Gaussian data (code; no number stated); PAPER.md §1 Toy code",
        N.SPARSITY_FRONTIER,
        (N.SPARSITY_FRONTIER,),
        partial(T.frontier_above, source="raw", reference="gaussian"),
    ),
    _c(
        "frontier-embedding",
        "Token-embedding rows have sparse structure: a better frontier than a Gaussian with their covariance",
        HEAP_TOY,
        "the same sweep on GloVe and Pythia embedding matrices (code; no number stated); PAPER.md §1 Toy code",
        N.SPARSITY_FRONTIER,
        (N.SPARSITY_FRONTIER,),
        partial(T.frontier_above, source="embedding", reference="embedding_gaussian"),
    ),
    _c(
        "sae-explained-variance",
        "SAE explained variance is similar for trained and random models",
        HEAP,
        "broadly similar across variants and layers (v2 Fig. 2); PAPER.md §1 SAE quality metrics",
        N.SAE_METRICS,
        (N.SAE_METRICS,),
        partial(T.sae_metric_similar, metric="explained_variance"),
    ),
    _c(
        "sae-cosine",
        "SAE reconstruction cosine is similar for trained and random models",
        HEAP,
        "broadly similar across variants and layers (v2 Fig. 2); PAPER.md §1 SAE quality metrics",
        N.SAE_METRICS,
        (N.SAE_METRICS,),
        partial(T.sae_metric_similar, metric="cos_sim"),
    ),
    _c(
        "why-gap-closed",
        "Where random-model SAEs reconstruct worse here, one factor swept by notebook 06 (SAE width, embedding "
        "scale, depth-scaled output projections; norm gains and SAE tokens where swept) closes most of the gap",
        OURS,
        "no such gap in the paper; PAPER.md §1 SAE quality metrics",
        N.WHY_FACTORS,
        (N.WHY_FACTORS,),
        T.why_gap_closed,
    ),
    _c(
        "autointerp-detection",
        "Detection AUROC: random-model latents score about as well as trained",
        HEAP,
        "about as well, Llama-3.1-70B scorer (v1 Fig. 1); PAPER.md §1 Auto-interpretability",
        N.AUROC_VS_LAYER,
        (N.AUROC_VS_LAYER,),
        partial(I.auroc_similar, backend=None, scorers=["detection"]),
    ),
    _c(
        "autointerp-fuzzing",
        "Fuzzing AUROC: random-model latents score about as well as trained",
        HEAP,
        "about as well, Llama-3.1-70B scorer (v1 Fig. 1); PAPER.md §1 Auto-interpretability",
        N.AUROC_VS_LAYER,
        (N.AUROC_VS_LAYER,),
        partial(I.auroc_similar, backend=None, scorers=["fuzzing"]),
    ),
    _c(
        "token-scorer-similar",
        "A token-identity scorer rates random-model latents about as well as trained ones",
        CRIT,
        "auto-interp rewards single-token latents (no number); PAPER.md §3",
        N.AUROC_VS_LAYER,
        (N.AUROC_VS_LAYER,),
        partial(I.auroc_similar, backend=I.TOKEN_BASELINE, scorers=["detection", "fuzzing"]),
    ),
    _c(
        "control-chance",
        "The Control (fresh noise embeddings) scores near chance",
        HEAP,
        "near chance, AUROC ~0.5; PAPER.md §1 Model variants",
        N.AUROC_VS_LAYER,
        (N.AUROC_VS_LAYER,),
        I.control_chance,
    ),
    _c(
        "entropy-random-lower",
        "Token entropy is lower for random variants than for the trained model",
        HEAP,
        "random variants low and flat (v2); PAPER.md §1 Token-distribution entropy",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.entropy_random_lower,
    ),
    _c(
        "entropy-trained-rises",
        "The trained model's token entropy rises with depth",
        HEAP,
        "rises with depth (v2); PAPER.md §1 Token-distribution entropy",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.entropy_trained_rises,
    ),
    _c(
        "entropy-random-flat",
        "Random variants' token entropy stays flat with depth",
        HEAP,
        "low and flat (v2); PAPER.md §1 Token-distribution entropy",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.entropy_random_flat,
    ),
    _c(
        "entropy-control-high",
        "Control latents have higher token entropy than the trained model's",
        HEAP,
        "high everywhere (v2); PAPER.md §1 Token-distribution entropy",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.entropy_control_higher,
    ),
    _c(
        "entropy-auroc-corr",
        "Per latent, token entropy and AUROC correlate negatively for random variants",
        HEAP,
        "negative correlation (v2 per-latent scatter); PAPER.md §1 Token-distribution entropy",
        N.ENTROPY_VS_AUROC,
        (N.ENTROPY_VS_AUROC,),
        I.entropy_auroc_corr,
    ),
    _c(
        "single-token-majority",
        "Random-model latents are mostly single-token latents",
        CRIT,
        "many single-token latents on a random 1-layer model (no number); PAPER.md §3",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.single_token_majority,
    ),
    _c(
        "single-token-more",
        "Random variants have more single-token latents than the trained model",
        CRIT,
        "PAPER.md §3",
        N.ENTROPY_VS_LAYER,
        (N.ENTROPY_VS_AUROC,),
        I.single_token_more,
    ),
    _c(
        "token-alone-above-chance",
        "Token identity alone scores random-model latents above chance",
        CRIT,
        "'fires on token X' is the easiest explanation; PAPER.md §3",
        N.SCORERS,
        (N.SCORERS,),
        I.token_alone_above_chance,
    ),
    _c(
        "single-token-explainer",
        "A one-token explanation scores random-model latents as well as the token profile",
        CRIT,
        "PAPER.md §3",
        N.SCORERS,
        (N.SCORERS,),
        I.single_token_explainer,
    ),
    _c(
        "llm-beyond-tokens",
        "The LLM's explanations add little beyond token identity on random-model latents",
        CRIT,
        "how much of the AUROC token identity already gets; PAPER.md §3",
        N.LLM_MINUS_TOKEN_BASELINE,
        (N.LLM_MINUS_TOKEN_BASELINE, N.AUROC_VS_LAYER),
        I.llm_beyond_tokens,
    ),
    _c(
        "positional-trained",
        "Trained models have positional latents",
        CRIT,
        "trained models have latents random ones lack, e.g. positional; PAPER.md §3",
        N.POSITIONAL,
        (N.POSITIONAL,),
        I.positional_trained,
    ),
    _c(
        "positional-random",
        "Random variants have fewer positional latents than the trained model",
        CRIT,
        "trained models have latents random ones lack; PAPER.md §3",
        N.POSITIONAL,
        (N.POSITIONAL,),
        I.positional_random,
    ),
    _c(
        "seed-shared",
        "SAEs differing only in seed share only part of their latents, ~30-40%",
        PB,
        "~30% (Llama-3-8B MLP, 131k latents), ~40% (Pythia-160M MLP, 32k); PAPER.md §2",
        N.SEED_STABILITY,
        (N.SEED_STABILITY,),
        T.seed_shared,
    ),
    _c(
        "seed-relu-vs-topk",
        "ReLU + L1 SAEs are more seed-stable than TopK at matched sparsity",
        PB,
        "ReLU more stable than TopK; PAPER.md §2",
        N.SEED_STABILITY,
        (N.SEED_STABILITY,),
        T.seed_relu_vs_topk,
    ),
    _c(
        "seed-wider",
        "Wider SAEs share fewer latents across seeds",
        PB,
        "wider SAEs share less; PAPER.md §2",
        N.SEED_STABILITY,
        (N.SEED_STABILITY,),
        T.seed_wider,
    ),
)


def rel_link(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def build_claims(
    figures: Path, options: Options | None = None, profile: str = "default", root: Path | None = None
) -> pd.DataFrame:
    """One row per claim of :data:`CLAIMS` (columns :data:`COLUMNS`). ``figure`` is relative to ``root`` (the
    repository; default the figures folder's parent), or names the notebook's source when the figure is missing."""
    figures = Path(figures)
    root = Path(root) if root is not None else figures.parent
    inp = Inputs(figures, options or Options())
    rows = []
    for c in CLAIMS:
        base = {"id": c.id, "claim": c.claim, "source": c.source, "paper": c.paper, "notebook": c.notebook}
        fig = figures / c.figure
        nb_src = f"notebooks/{c.notebook.split(' ')[0]}.py"
        figure = rel_link(fig, root) if fig.exists() else nb_src
        missing = [n for n in c.inputs if not inp.has(n)]
        try:
            if missing:
                raise MissingInput(
                    f"notebook {c.notebook} has not run under profile {profile!r} "
                    f"({', '.join(n + '.csv' for n in missing)} missing)"
                )
            r = c.read(inp)
            r, sae_tokens, settled = gate(c.id, c.notebook, r, inp)
        except MissingInput as err:
            why = str(err) if missing else f"notebook {c.notebook} (profile {profile!r}) did not measure this: {err}"
            rows.append(
                {
                    **base,
                    "measure": "",
                    "value": math.nan,
                    "lo": math.nan,
                    "hi": math.nan,
                    "interval_over": "",
                    "range_lo": math.nan,
                    "range_hi": math.nan,
                    "range_over": "",
                    "sae_tokens": math.nan,
                    "settled": "",
                    "verdict": NOT_RUN,
                    "qualifier": "",
                    "reason": why,
                    "figure": figure,
                }
            )
            continue
        rows.append(
            {
                **base,
                "measure": r.measure,
                "value": r.value,
                **_spread(r),
                "sae_tokens": sae_tokens,
                "settled": settled,
                "verdict": r.verdict.verdict,
                "qualifier": r.verdict.qualifier,
                "reason": r.verdict.reason,
                "figure": figure,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _spread(r: Result) -> dict:
    """The result's interval columns, or its range columns for a range (never shown as an interval)."""
    if r.kind == "range":
        nan = math.nan
        return {
            "lo": nan,
            "hi": nan,
            "interval_over": "",
            "range_lo": r.lo,
            "range_hi": r.hi,
            "range_over": r.interval_over,
        }
    if r.kind != "interval":
        raise ValueError(f"a claim's result kind must be 'interval' or 'range'; got {r.kind!r}")
    return {
        "lo": r.lo,
        "hi": r.hi,
        "interval_over": r.interval_over,
        "range_lo": math.nan,
        "range_hi": math.nan,
        "range_over": "",
    }
