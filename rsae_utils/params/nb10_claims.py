"""Parameters of notebook 10_claims (the claims table): the margins and thresholds of the verdict rules
(``rsae_utils/claims/rules.py``) and the bootstrap behind the intervals. Every profile uses the same margins, so a
verdict means the same thing at every scale; only the bootstrap size differs.

It reads the figures of notebooks 01-09 (``after``, so the runner reruns it when one of them changes). Unlike the
other notebooks it does not need them all: a claim whose notebook has not run gets the verdict "not run", so
``pull_upstream`` is off and ``make figures NB=10`` alone never starts the whole pipeline.
"""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.names import TABLES
from rsae_utils.params.core import Config, Notebook, Param, is_float, is_int, register

# The notebooks whose tables the claims read (rsae_utils.names.TABLES), and those they are made from.
UPSTREAM = sorted({t.notebook for t in TABLES.values()} | {t.upstream for t in TABLES.values() if t.upstream})


def _check_10(cfg: Config) -> None:
    if cfg.mmcs_low >= cfg.mmcs_high:
        raise ParameterError(f"parameter 'mmcs_low' must be < mmcs_high ({cfg.mmcs_high}); got {cfg.mmcs_low}")


def _same(name: str, value, check, help: str) -> Param:
    return Param(name, value, value, value, check, help)


register(
    "10_claims",
    Notebook(
        title="The claims table: every claim of the three works, this run's number, and a verdict by a stated rule",
        params=[
            _same(
                "auroc_margin",
                0.05,
                is_float(1e-6, 0.5),
                "AUROC differences within +- this are 'about as well' (the whole interval must lie inside)",
            ),
            _same(
                "metric_margin",
                0.05,
                is_float(1e-6, 1.0),
                "SAE metric (explained variance, cosine) differences within +- this are 'similar'",
            ),
            _same(
                "chance_margin",
                0.05,
                is_float(1e-6, 0.5),
                "'near chance' = AUROC interval inside 0.5 +- this; a scorer must beat 0.5 + this on the trained model",
            ),
            _same(
                "entropy_margin", 0.1, is_float(1e-6, 10.0), "token-entropy changes (nats) smaller than this are none"
            ),
            _same("corr_margin", 0.1, is_float(1e-6, 1.0), "correlations closer to 0 than this are none"),
            _same(
                "share_margin",
                0.05,
                is_float(1e-6, 1.0),
                "share differences (single-token, positional, seed-shared) smaller than this are none",
            ),
            _same(
                "band_margin", 0.1, is_float(0.0, 1.0), "the paper's ~30-40% shared band is widened by this each side"
            ),
            _same("majority", 0.5, is_float(0.0, 1.0), "'mostly single-token' = a share of at least this"),
            _same("mmcs_high", 0.9, is_float(0.0, 1.0), "'MMCS near 1' = at least this"),
            _same("mmcs_low", 0.5, is_float(0.0, 1.0), "'no band' = the sweep's largest MMCS at most this"),
            _same(
                "mmcs_drop", 0.1, is_float(0.0, 1.0), "a band: both ends of the L1 sweep lower than its best by this"
            ),
            _same("toy_ratio", 2.0, is_float(1.0), "toy superposition: control/data angle ratio needed in every view"),
            _same(
                "max_dead_fraction",
                0.5,
                is_float(0.0, 1.0),
                "seed-stability claims are not decidable when more latents than this never fire (unconverged SAEs)",
            ),
            _same(
                "min_corr_latents",
                20,
                is_int(3),
                "the entropy-AUROC correlation uses the LLM's scores when it scored this many random latents",
            ),
            Param("n_boot", 200, 2000, 2000, is_int(100, 100_000), "bootstrap draws of every interval"),
            _same("seed", 0, is_int(0), "bootstrap seed"),
            _same("ci_level", 0.95, is_float(0.5, 0.999), "confidence level of the intervals"),
        ],
        checks=[_check_10],
        after=UPSTREAM,
        pull_upstream=False,
    ),
)
