"""The figures and tables one notebook writes and another reads, named once: the producing notebook saves under
the constant here (``save_figure(fig, names.AUROC_VS_LAYER, ...)``) and the claims (notebook 10) open the table
through :data:`TABLES`, which says which columns they read and which notebook to rerun when it is missing.

Imports nothing of ours, so every producer (notebooks, ``plots``, ``studies``) and ``claims`` can import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A figure's table (``<name>.csv`` in the figures folder, beside ``<name>.png`` and its manifest)."""

    notebook: str  # the notebook that writes it: rerun it when the table is missing or stale
    columns: tuple[str, ...] = ()  # the columns the claims read (checked when they open the table)
    upstream: str = ""  # the notebook whose artifacts the producer draws, when it is not the producer itself

    def producer(self) -> str:
        """The producing notebook, with the upstream it draws from: ``05_roc_entropy (after 04_autointerp)``."""
        return self.notebook + (f" (after {self.upstream})" if self.upstream else "")

    def rerun(self) -> str:
        """Which notebook to run for this table, in words."""
        return f"notebook {self.producer()}"


# notebook 01
TOY_SUPERPOSITION = "01_toy_superposition"
# notebook 02
MMCS = "02_mmcs_goldilocks"
SPARSITY_FRONTIER = "02_sparsity_frontier"
# notebook 03
SAE_METRICS = "fig2_sae_metrics"
# notebook 05 (from notebook 04's auto-interp tables)
AUROC_VS_LAYER = "auroc_vs_layer"
ENTROPY_VS_LAYER = "entropy_vs_layer"
ENTROPY_VS_AUROC = "entropy_vs_auroc"
LLM_MINUS_TOKEN_BASELINE = "llm_minus_token_baseline"
# notebook 06
WHY_FACTORS = "06_why_factors"
WHY_PREDICTION = "06_prediction"  # the mean-field prediction next to the measured residual, per (cache, layer)
WHY_CELLS = "06_init_cells"  # the architecture x initializer cells: residual statistics and SAE rows
WHY_GAUSSIAN = "06_gaussian"  # each SAE's EV against the same SAE on its residual's Gaussian
WHY_SEED_ROWS = "06_seed_rows"  # every SAE of notebook 06 per seed (the other tables hold seed means)
# notebook 07
SEED_STABILITY = "07_seed_stability"
SEED_REPLICATES = "07_seed_replicates"
# notebook 08
POSITIONAL = "08_positional"
SCORERS = "08_scorers"
# notebook 09
BUDGET = "09_training_budget"  # every snapshot's measures (the figure's table)
BUDGET_CURVES = "09_budget_curves"  # per (variant, layer, measure): last value, change over the last 4x, settled
BUDGET_GAPS = "09_budget_gaps"  # per (layer, measure, variant): trained-minus-variant gap and its trend

_NB05 = {"notebook": "05_roc_entropy", "upstream": "04_autointerp"}
TABLES: dict[str, Table] = {
    TOY_SUPERPOSITION: Table("01_toy_superposition", ("view", "angle_ratio")),
    MMCS: Table("02_mmcs_goldilocks", ("condition", "dict_size", "l1", "seed", "mmcs")),
    SPARSITY_FRONTIER: Table("02_mmcs_goldilocks", ("condition",)),  # the claims read its manifest's comparison
    SAE_METRICS: Table("03_sae_training", ("variant", "layer", "explained_variance", "cos_sim")),
    AUROC_VS_LAYER: Table(columns=("backend", "scorer", "variant", "layer", "auroc", "auroc_sd"), **_NB05),
    ENTROPY_VS_LAYER: Table(**_NB05),  # linked from the claims, not read
    ENTROPY_VS_AUROC: Table(
        columns=("variant", "layer", "latent", "scorer", "backend", "auroc", "entropy_nats", "single_token"), **_NB05
    ),
    LLM_MINUS_TOKEN_BASELINE: Table(
        columns=("backend", "scorer", "variant", "n_latents", "gap", "gap_lo", "gap_hi"), **_NB05
    ),
    WHY_FACTORS: Table("06_why_default_differs", ("factor", "value", "variant", "layer", "R", "explained_variance")),
    WHY_PREDICTION: Table("06_why_default_differs", ("source", "layer", "pred_rms", "norm_rms", "pred_token_share")),
    WHY_CELLS: Table("06_why_default_differs", ("source", "layer", "depth_fraction")),
    WHY_GAUSSIAN: Table(
        "06_why_default_differs",
        ("source", "layer", "explained_variance", "gauss_explained_variance", "ev_minus_gauss"),
    ),
    WHY_SEED_ROWS: Table("06_why_default_differs", ("part", "source", "layer", "R", "seed", "explained_variance")),
    SEED_STABILITY: Table(
        "07_seed_stability",
        (
            "variant",
            "architecture",
            "R",
            "k",
            "seed_pair",
            "seed_a",
            "seed_b",
            "threshold",
            "shared_fraction",
            "dead_fraction",
        ),
    ),
    SEED_REPLICATES: Table("07_seed_stability", ("variant", "layer", "seed", "metric", "value")),
    POSITIONAL: Table(
        # control_test_share: written by the binned firing-rate test only, so a table from the eta^2 rule is refused
        "08_critique",
        ("variant", "layer", "boundary", "n_judged", "n_positional", "n_positional_control", "control_test_share"),
    ),
    SCORERS: Table("08_critique", ("variant", "layer", "scorer", "auroc", "auroc_lo", "auroc_hi")),
    BUDGET_CURVES: Table(
        "09_training_budget", ("variant", "layer", "measure", "tokens_last", "change_last_step", "settled")
    ),
    BUDGET_GAPS: Table("09_training_budget", ("layer", "measure", "variant", "gap_first", "gap_last", "trend")),
}


def table_spec(name: str) -> Table:
    """The registry entry of ``name``; ``KeyError`` naming the registered tables when there is none."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is no registered table; rsae_utils.names.TABLES has {sorted(TABLES)}") from None
