"""The claims table: every claim of the three works (PAPER.md), what this run measured, and the verdict of its rule.

:data:`CLAIMS` lists each claim with its source, the paper's number (PAPER.md section), the notebook and tables it
is read from and its reader (``toy_sae``, ``interp``). :func:`build_claims` runs every reader on a figures folder;
a claim whose notebook has not run (a table missing or lacking what the claim needs) gets the verdict ``not run``
naming that notebook, never an exception. :func:`claims_markdown` renders the table with links to the figures.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

import rsae_utils.claims.interp as I
import rsae_utils.claims.toy_sae as T
import rsae_utils.names as N
from rsae_utils.claims.inputs import Inputs, MissingInput, Options, Result, fmt_num
from rsae_utils.claims.rules import NOT_RUN, VERDICTS
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


def _rel(path: Path, start: Path) -> str:
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
        figure = _rel(fig, root) if fig.exists() else nb_src
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
                "lo": r.lo,
                "hi": r.hi,
                "interval_over": r.interval_over,
                "sae_tokens": sae_tokens,
                "settled": settled,
                "verdict": r.verdict.verdict,
                "qualifier": r.verdict.qualifier,
                "reason": r.verdict.reason,
                "figure": figure,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _qualifier(row: pd.Series) -> str:
    """The row's qualifier ("" when none; a CSV read back gives NaN for an empty one)."""
    q = row.get("qualifier", "")
    return q if isinstance(q, str) else ""


def _training_cell(row: pd.Series) -> str:
    """ "61,440; settled by ..." for a claim on SAEs, "" otherwise (a CSV read back gives NaN for empty cells)."""
    tokens, settled = row.get("sae_tokens", math.nan), row.get("settled", "")
    settled = settled if isinstance(settled, str) else ""
    if not isinstance(tokens, int | float) or not math.isfinite(tokens):
        return settled
    return f"{tokens:,.0f}" + (f"; {settled}" if settled else "")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_markdown(table: pd.DataFrame, link_from: Path | str = ".", root: Path | str | None = None) -> str:
    """The table as markdown; figure links relative to ``link_from`` (the folder the markdown file sits in), given
    ``root``, the folder the ``figure`` column is relative to (default: the same folder)."""
    root = Path(root) if root is not None else Path(link_from)
    head = [
        "claim",
        "source",
        "paper (PAPER.md)",
        "this run [95% interval]",
        "interval over",
        "SAE training tokens; settled in the study?",
        "verdict",
        "why",
        "figure",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        val = fmt_num(r.value)
        if val and (fmt_num(r.lo) or fmt_num(r.hi)):
            val += f" [{fmt_num(r.lo)}, {fmt_num(r.hi)}]"
        link = _rel(root / r.figure, Path(link_from))
        name = Path(r.figure).name
        cells = [
            r.claim,
            r.source,
            r.paper,
            f"{val}<br>{r.measure}" if val else "",
            r.interval_over,
            _training_cell(r),
            f"**{r.verdict}**" + (f" ({_qualifier(r)})" if _qualifier(r) else ""),
            r.reason,
            f"[{name}]({link})",
        ]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_counts(table: pd.DataFrame, qualified: bool = False) -> dict[str, int]:
    """Rows per verdict, in the order of ``VERDICTS`` (a result built into its scorer is "not decidable", never
    "reproduced"); ``qualified`` counts each verdict with its qualifier apart ("not reproduced (negligible)")."""
    counts: dict[str, int] = {}
    for v in VERDICTS:
        rows = table[table.verdict == v]
        quals = [_qualifier(r) if qualified else "" for _, r in rows.iterrows()]
        for q in sorted(set(quals)):
            counts[f"{v} ({q})" if q else v] = quals.count(q)
    return counts


def readme_block(md: str, figures_rel: str = "figures") -> str:
    """``claims.md`` as the README shows it: the same text, its figure links (relative to the figures folder)
    prefixed with ``figures_rel`` (a test keeps the README's copy equal to this)."""
    return re.sub(r"\]\((?![a-z]+:|/)([^)]+)\) \|$", rf"]({figures_rel}/\1) |", md.strip(), flags=re.M) + "\n"
