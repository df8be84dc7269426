"""Parameters of notebook 08_critique (the critique of Heap et al. measured on notebook 03's SAEs, no LLM).

``default`` is sized for ~2-3 minutes on a 2-core CPU: notebook 03's 20 SAEs (5 variants x 4 layers, 2,304 latents
each) on their 4,096 held-out tokens; positional statistics of every live latent (the binned firing-rate test and
the eta^2 rule with 100 permutations, both boundary views, with the shuffled control) and the token-identity
scorers on 60 sampled latents per SAE. ``paper`` takes delphi's example counts (notebook 04's paper profile),
which need notebook 03's paper-scale held-out caches.
"""

from __future__ import annotations

from rsae_utils import paths
from rsae_utils.errors import ArtifactError, ParameterError
from rsae_utils.params.core import (
    INHERIT,
    Config,
    Notebook,
    Param,
    is_float,
    is_int,
    list_of,
    one_of,
    optional,
    register,
    resolve,
)
from rsae_utils.params.sampling import check_sampling, sampling_params
from rsae_utils.store import load_table
from rsae_utils.subject.variants import VARIANTS

BOUNDARY = ["exclude", "include", "both"]


def _check_against_index(cfg: Config) -> None:
    """Variants and layers notebook 03 trained no SAE for fail here, listing the trained ones (when its index
    exists; without it the runner orders notebook 03 first, and the notebook says so)."""
    index = paths.existing_sae_index(cfg.profile)
    if index is None:
        return
    try:
        runs = load_table(index, rerun=paths.rerun_03(cfg.profile))
    except ArtifactError as err:
        raise ParameterError(f"cannot check parameters 'variants' and 'layers': {err}") from None
    trained_v = sorted(set(runs.get("variant", [])))
    missing = [v for v in cfg.variants if v not in trained_v]
    if missing:
        raise ParameterError(
            f"parameter 'variants' names {missing}, which notebook 03 trained no SAE for; trained "
            f"variants: {trained_v} (from {index})"
        )
    if cfg.layers is not None:
        trained_l = sorted({int(x) for x in runs.get("layer", [])})
        bad = [x for x in cfg.layers if x not in trained_l]
        if bad:
            raise ParameterError(
                f"parameter 'layers' names layer(s) {bad} that notebook 03 trained no SAE for; "
                f"trained layers: {trained_l} (from {index})"
            )


def _check_08(cfg: Config) -> None:
    floor = 1.0 / (cfg.n_perm + 1)
    if cfg.alpha < floor:
        raise ParameterError(
            f"parameter 'alpha' must be >= 1 / (n_perm + 1) = {floor:.4g}, the smallest permutation p-value with "
            f"n_perm={cfg.n_perm} (raise n_perm for a smaller alpha); got {cfg.alpha}"
        )
    check_sampling(cfg)
    # The held-out contexts each SAE is read on: notebook 03's test windows (under this profile), capped.
    n_ctx = resolve("03_sae_training", cfg.profile).n_test_windows
    n_ctx = min(n_ctx, cfg.max_contexts) if cfg.max_contexts is not None else n_ctx
    if cfg.window_halves and cfg.window_blocks > n_ctx:
        raise ParameterError(
            f"parameter 'window_blocks' must be <= the held-out contexts ({n_ctx}: notebook 03's n_test_windows, "
            f"capped by max_contexts); got {cfg.window_blocks}"
        )
    _check_against_index(cfg)


register(
    "08_critique",
    Notebook(
        title="What random-model latents are: positional latents, token-identity scorers, SAE diagnostics (no LLM)",
        params=[
            Param(
                "variants",
                list(VARIANTS),
                list(VARIANTS),
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "model variants (their SAEs and held-out caches come from notebook 03)",
            ),
            Param(
                "layers",
                None,
                None,
                None,
                optional(list_of(is_int(0), unique=True)),
                "layers to measure (None: every layer notebook 03 trained)",
            ),
            # positional latents
            Param(
                "boundary",
                "both",
                "both",
                "both",
                one_of(BOUNDARY),
                "position 0 of every context (the document-boundary token, left out of SAE training): 'exclude' it "
                "from the positional statistics, 'include' it, or report 'both' views (the first view is the primary)",
            ),
            Param(
                "n_perm", 20, 100, 200, is_int(1, 100_000), "within-context position shuffles of the permutation test"
            ),
            Param(
                "alpha",
                0.05,
                0.01,
                0.01,
                is_float(0.0, 1.0),
                "per-latent level of both positional rules: the firing-rate test's p-value (and the eta^2 rule's "
                "permutation p-value) is <= alpha",
            ),
            Param(
                "rate_bins",
                8,
                8,
                8,
                is_int(2, 64),
                "equal position bins of the context whose firing rates the positional test compares",
            ),
            Param(
                "rate_min_expected",
                2.0,
                2.0,
                2.0,
                is_float(1.0, 1000.0),
                "a latent is judged when every bin expects at least this many of its fires (the test's false-positive "
                "rate is measured at alpha down to 2, tests/studies/test_positional_rate.py)",
            ),
            Param(
                "min_tv",
                0.1,
                0.1,
                0.1,
                is_float(0.0, 1.0),
                "... and a positional latent has at least this share of its fires away from a uniform profile over "
                "the bins (total variation distance)",
            ),
            Param(
                "fdr_q",
                0.05,
                0.05,
                0.05,
                is_float(1e-6, 0.5),
                "false discovery rate of the Benjamini-Hochberg list of positional latents (per SAE and view)",
            ),
            Param(
                "window_blocks",
                4,
                20,
                20,
                is_int(2, 100_000),
                "blocks of contiguous held-out contexts whose random halves give the positional shares' window spread "
                "(at most notebook 03's n_test_windows)",
            ),
            Param(
                "window_halves",
                4,
                10,
                20,
                is_int(0, 10_000),
                "random halves of the blocks per SAE and view (0: none; the claims then resample latents only; "
                "default: 10, down from 20 to pay for notebook 03's 4x longer training)",
            ),
            Param(
                "min_excess",
                0.1,
                0.1,
                0.1,
                is_float(0.0, 1.0),
                "the earlier eta^2 rule (reported beside the test): eta^2 beyond the shuffled control by this much",
            ),
            Param(
                "min_firing_rate",
                0.0,
                0.002,
                0.001,
                is_float(0.0, 1.0),
                "latents firing on fewer held-out tokens than this share are not judged",
            ),
            Param(
                "boundary_min_share",
                0.9,
                0.9,
                0.9,
                is_float(0.0, 1.0),
                "a boundary latent holds at least this share of its activation mass at position 0",
            ),
            Param("n_levels", 2, 2, 2, is_int(2, 32), "activation levels of the position mutual information"),
            Param("max_lag", 4, 8, 8, is_int(1, 64), "lags of the autocorrelation along the context"),
            Param("top_n", 3, 5, 10, is_int(1), "most positional latents listed per variant"),
            # example sets and token profiles: notebook 04's block, smaller where the permutation tests cost time
            Param(
                "max_contexts",
                None,
                96,
                None,
                optional(is_int(1)),
                "cap on held-out contexts read per SAE (default: 96 of notebook 03's 400, ~12k tokens: the "
                "permutation tests cost n_perm passes over every activation)",
            ),
            *sampling_params(
                {
                    # two at least: an intruder is an activating window of another sampled latent
                    "n_latents": {"smoke": 6, "default": 60, "check": is_int(2), "gpu": INHERIT},
                    "min_examples": {"default": 16},
                    "n_bins": {"default": 5},
                    "per_bin": {"default": 4},
                    "n_negatives": {
                        "default": 20,
                        "check": is_int(1),
                        "help": "random non-activating windows per latent (hard ones: as many)",
                    },
                }
            ),
            # scorers
            Param("single_token_n", 1, 1, 1, is_int(1, 100), "tokens the single-token explanation names"),
            Param("intruder_trials", 3, 10, 20, is_int(1), "intruder questions per latent"),
            Param("intruder_real", 2, 4, 4, is_int(1), "real windows beside the intruder in each question"),
            Param("n_neighbours", 3, 5, 5, is_int(1), "nearest decoder directions whose windows give hard negatives"),
            Param("example_boot", 50, 200, 500, is_int(2), "bootstrap resamples of each latent's examples"),
            Param("n_boot", 200, 1000, 1000, is_int(2), "bootstrap draws over latents (each with resampled examples)"),
            Param("ci_level", 0.95, 0.95, 0.95, is_float(0.5, 0.999), "confidence level of the intervals"),
            # diagnostics
            Param(
                "duplicate_threshold",
                0.9,
                0.9,
                0.9,
                is_float(-1.0, 1.0),
                "a latent has a near-duplicate when its max decoder cosine is at least this",
            ),
            Param("seed", 0, 0, 0, is_int(0), "seed of latent sampling, shuffles, intruders and bootstraps"),
            Param("device", "cpu", "cpu", "cuda", one_of(["cpu", "cuda", "mps"]), "torch device the SAEs encode on"),
            Param("threads", 1, 0, 0, is_int(0, 1024), "torch intra-op threads (0: torch's default)"),
        ],
        checks=[_check_08],
        after=["03_sae_training"],
    ),
)
