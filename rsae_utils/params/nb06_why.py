"""Parameters of notebook 06_why_default_differs (why the default run's random variants differ from the paper's).

``default`` is sized for ~9 minutes (519 s in the run at 9bc77a2) on a 2-core CPU, alone, from notebook 03's default
caches (R = 16, 400 held-out windows): residual-stream statistics of notebook 03's caches; TopK SAEs at layers 0, 4
and 9 of the trained model, the re-randomized one and step-0 at R = 16 (~61k tokens each), R = 64 only for the
trained and the re-randomized model at layer 9 (~25 s each); the re-randomized model remade with its output
projections drawn at 0.105x their trained std and with its embedding x16 (one harvest each, to layer 9); five
architecture x initializer cells at initialization on 160 training windows, with SAEs at the layers matching 4 and 9
(one pass, 20k tokens); the Gaussian control at layers 4 and 9; a second SAE seed for the cells' SAEs and for the
base-width SAEs and Gaussian controls at layer 9 (intervals over seeds); the mean-field prediction of every random
cache. SAE metrics and the option caches use the first ``test_windows`` held-out windows (64 = 8,192 tokens, not
notebook 03's 400): a held-out pass of a wide SAE over 51k tokens would cost more than its training. ``paper`` needs
notebook 03's caches *with a training split* (notebook 03's paper profile streams instead: rerun it with
``train_from='cache'``) and a GPU; it has no cells (notebook 03's model is Pythia there, and the cells are built
from a Llama config).
"""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import (
    NOTEBOOKS,
    Config,
    Notebook,
    Param,
    is_bool,
    is_float,
    is_int,
    list_of,
    one_of,
    register,
)
from rsae_utils.params.nb03_sae import known_model_dims
from rsae_utils.subject.init_cells import CELLS
from rsae_utils.subject.variants import VARIANTS

_LLAMA_MODELS = ("smollm2-135m", "tiny-random")

_SAE_VARIANTS = ["trained", "rerandomized_incl_emb", "step0"]
_RERANDOMIZED = ["rerandomized_incl_emb", "rerandomized_excl_emb"]


def _check_06(cfg: Config) -> None:
    if cfg.base_expansion not in cfg.expansions:
        raise ParameterError(
            f"parameter 'base_expansion' must be one of 'expansions' {list(cfg.expansions)} (the "
            f"other factors are swept at it); got {cfg.base_expansion}"
        )
    if 1.0 not in [float(s) for s in cfg.embedding_scales]:
        raise ParameterError(
            f"parameter 'embedding_scales' must hold 1.0 (notebook 03's own caches, the baseline); "
            f"got {list(cfg.embedding_scales)}"
        )
    if 1.0 not in [float(s) for s in cfg.output_scales]:
        raise ParameterError(
            f"parameter 'output_scales' must hold 1.0 (the paper's rule, the baseline); got {list(cfg.output_scales)}"
        )
    if cfg.train_tokens not in cfg.token_budgets:
        raise ParameterError(
            f"parameter 'token_budgets' must hold train_tokens ({cfg.train_tokens}, the baseline); "
            f"got {list(cfg.token_budgets)}"
        )
    small = [t for t in cfg.token_budgets if t < cfg.batch_size]
    if small:
        raise ParameterError(f"parameter 'token_budgets' must be >= batch_size ({cfg.batch_size}); got {small}")
    model = next(p for p in NOTEBOOKS["03_sae_training"].params if p.name == "model").value(cfg.profile)
    dims = known_model_dims(model)
    if dims is not None and cfg.k >= min(cfg.expansions) * dims[1]:
        raise ParameterError(
            f"parameter 'k' must be below the smallest SAE's latents (R={min(cfg.expansions)} x "
            f"d_model {dims[1]} of notebook 03's {model}); got {cfg.k}"
        )
    if cfg.wide_variants and "trained" not in cfg.wide_variants:
        raise ParameterError(
            f"parameter 'wide_variants' must include 'trained' (the reference at every R) or be "
            f"empty; got {list(cfg.wide_variants)}"
        )
    bad = [v for v in cfg.wide_variants if v not in cfg.variants]
    if bad:
        raise ParameterError(f"parameter 'wide_variants' must be among 'variants' {list(cfg.variants)}; got {bad}")
    bad = [x for x in cfg.wide_layers if x not in cfg.layers]
    if bad:
        raise ParameterError(f"parameter 'wide_layers' must be among 'layers' {list(cfg.layers)}; got {bad}")
    bad = [x for x in cfg.neox_sae_layers if x not in cfg.neox_layers]
    if bad:
        raise ParameterError(
            f"parameter 'neox_sae_layers' must be among 'neox_layers' {list(cfg.neox_layers)}; got {bad}"
        )
    for name in ("cell_sae_layers", "gauss_layers", "seed_layers"):
        bad = [x for x in cfg[name] if x not in cfg.layers]
        if bad:
            raise ParameterError(f"parameter {name!r} must be among 'layers' {list(cfg.layers)}; got {bad}")
    if cfg.cell_train_tokens < cfg.batch_size:
        raise ParameterError(
            f"parameter 'cell_train_tokens' must be >= batch_size ({cfg.batch_size}); got {cfg.cell_train_tokens}"
        )
    if cfg.init_cells and model.strip().lower() not in _LLAMA_MODELS:
        raise ParameterError(
            f"parameter 'init_cells' must be empty unless notebook 03's model is one of {_LLAMA_MODELS} (the cells "
            f"are built from a Llama config); got {list(cfg.init_cells)} with {model!r}"
        )
    if cfg.seed in cfg.extra_seeds:
        raise ParameterError(
            f"parameter 'extra_seeds' must not hold 'seed' ({cfg.seed}), the SAEs' own seed; "
            f"got {list(cfg.extra_seeds)}"
        )
    if "trained" not in cfg.variants:
        raise ParameterError(f"parameter 'variants' must include 'trained' (the reference); got {list(cfg.variants)}")


register(
    "06_why_default_differs",
    Notebook(
        title="Why the default run's random variants differ from the paper's: one factor at a time",
        params=[
            Param(
                "variants",
                _SAE_VARIANTS,
                _SAE_VARIANTS,
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "variants whose SAEs are swept over width (needs 'trained')",
            ),
            Param(
                "stats_variants",
                list(VARIANTS),
                list(VARIANTS),
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "variants whose residual-stream statistics are measured (every cached layer of notebook 03)",
            ),
            Param(
                "factor_variants",
                ["rerandomized_incl_emb"],
                ["rerandomized_incl_emb"],
                _RERANDOMIZED,
                list_of(one_of(_RERANDOMIZED), min_len=0, unique=True),
                "re-randomized variants remade with kept norm gains and scaled embeddings (each option: one harvest)",
            ),
            Param(
                "layers",
                [0, 3],
                [0, 4, 9],
                [0, 2, 4],
                list_of(is_int(0), unique=True),
                "layers of the SAE sweeps; each must be one of notebook 03's cached layers",
            ),
            Param(
                "expansions",
                [2, 4],
                [16, 64],
                [16, 64, 128],
                list_of(is_int(1, 256), unique=True),
                "SAE widths R of the width sweep",
            ),
            Param("base_expansion", 2, 16, 64, is_int(1, 256), "R of the other sweeps (notebook 03's)"),
            Param(
                "wide_layers",
                [],
                [9],
                [],
                list_of(is_int(0), min_len=0, unique=True),
                "layers where widths above base_expansion are trained (empty: all of 'layers'); default: the deepest "
                "only, to save the R = 64 SAEs' time (~35 s each)",
            ),
            Param(
                "wide_variants",
                [],
                ["trained", "rerandomized_incl_emb"],
                [],
                list_of(one_of(VARIANTS), min_len=0, unique=True),
                "variants whose widths above base_expansion are trained (empty: all of 'variants'; else with "
                "'trained'); default: step-0 only at R <= base_expansion, to save time",
            ),
            Param("k", 8, 32, 32, is_int(1), "TopK k (notebook 03's)"),
            Param(
                "norm_gains",
                True,
                False,
                True,
                is_bool(),
                "sweep the norm gains of factor_variants: redrawn (notebook 03) against kept at their trained values "
                "(default: off; it closed 1% of the gap at 4dda93a, and the mean field predicts nothing from it: a "
                "redrawn gain vector keeps E[g^2], all a normalized read depends on)",
            ),
            Param(
                "embedding_scales",
                [1.0, 4.0],
                [1.0, 16.0],
                [1.0, 4.0, 16.0],
                list_of(is_float(1e-3, 1e3), unique=True),
                "token-embedding scales of factor_variants (1.0: notebook 03's caches; one harvest per other value)",
            ),
            Param(
                "output_scales",
                [1.0, 0.5],
                [1.0, 0.105],
                [1.0],
                list_of(is_float(1e-4, 1e3), unique=True),
                "scales of the re-randomized output projections' std (W_O, W_out) of factor_variants (1.0: the "
                "paper's rule; 0.105 = sqrt(10) / 30, wang_init's ratio to small_init at SmolLM2's depth; one harvest "
                "per other value)",
            ),
            Param(
                "train_tokens",
                3072,
                61_440,
                1_000_000,
                is_int(1),
                "tokens each SAE trains on (default: a quarter of notebook 03's 262,144, to afford the factors and "
                "seeds; notebook 09 measures how the gaps move with tokens)",
            ),
            Param(
                "token_budgets",
                [3072, 6144],
                [61_440],
                [1_000_000],
                list_of(is_int(1), unique=True),
                "training budgets of the tokens sweep (at base_expansion; a single value skips it); default: none, "
                "notebook 09's training-budget study measures 4k-1M tokens on its own caches",
            ),
            Param(
                "test_windows",
                0,
                64,
                0,
                is_int(0),
                "held-out windows (the first N of notebook 03's test split) of the SAE metrics and option caches "
                "(0: all)",
            ),
            Param(
                "neox_layers",
                [0, 1],
                [],
                [],
                list_of(is_int(0, 5), min_len=0, unique=True),
                "layers of the Pythia-70m-shaped GPT-NeoX at initialization harvested on notebook 03's windows and "
                "measured (empty: no second architecture)",
            ),
            Param(
                "neox_sae_layers",
                [0, 1],
                [],
                [],
                list_of(is_int(0, 5), min_len=0, unique=True),
                "its layers with a TopK SAE at base_expansion (among neox_layers)",
            ),
            Param(
                "neox_init",
                "pythia",
                "pythia",
                "pythia",
                one_of(["pythia", "hf"]),
                "its initializer: pythia (GPT-NeoX's small_init / wang_init) or hf (transformers' N(0, 0.02))",
            ),
            Param("neox_seed", 0, 0, 0, is_int(0), "seed of its initialization"),
            Param(
                "init_cells",
                list(CELLS),
                list(CELLS),
                [],
                list_of(one_of(list(CELLS)), min_len=0, unique=True),
                "architecture x initializer cells at initialization (rsae_utils.subject.init_cells; needs a "
                "Llama-style notebook 03 model): each one harvest on notebook 03's windows",
            ),
            Param(
                "cell_train_windows",
                16,
                160,
                160,
                is_int(1),
                "training windows of the cells' caches (the first N of notebook 03's; ~1 s per 1k tokens per cell)",
            ),
            Param(
                "cell_sae_layers",
                [3],
                [4, 9],
                [],
                list_of(is_int(0), min_len=0, unique=True),
                "layers (of notebook 03's model; the 6-layer cell at the same fraction of depth) with an SAE per cell",
            ),
            Param(
                "cell_train_tokens",
                1536,
                20_480,
                20_480,
                is_int(1),
                "training tokens of the cells' SAEs (default: about one pass over their training windows)",
            ),
            Param("cell_seed", 0, 0, 0, is_int(0), "seed of the cells' initialization"),
            Param(
                "gauss_layers",
                [3],
                [4, 9],
                [],
                list_of(is_int(0), min_len=0, unique=True),
                "layers of the Gaussian control (an SAE on a Gaussian with the residual's mean and covariance) "
                "for every variant and cell (layer 0: no gap to explain)",
            ),
            Param("n_top_pcs", 3, 3, 3, is_int(0, 64), "top principal directions projected out for 'EV without them'"),
            Param(
                "detectors",
                True,
                True,
                True,
                is_bool(),
                "count token-detector latents (decoder cosine > 0.5 with a token's mean direction) against "
                "shuffled tokens",
            ),
            Param("batch_size", 256, 512, 4096, is_int(1), "SAE training batch, tokens"),
            Param(
                "lr",
                3e-3,
                1e-3,
                1.4e-4,
                is_float(0.0, 1.0),
                "Adam learning rate at base_expansion (notebook 03's at its R); other widths follow sparsify's "
                "1/sqrt(d_sae) rule (default: 2e-3 at R = 4, 5e-4 at R = 64)",
            ),
            Param("seed", 0, 0, 0, is_int(0), "SAE initialisation and batch-order seed"),
            Param(
                "extra_seeds",
                [1],
                [1],
                [1, 2],
                list_of(is_int(0), min_len=0, unique=True),
                "more SAE seeds: for the sweep's base-width SAEs and their Gaussian controls at seed_layers, and for "
                "every cell's SAE (its Gaussian control keeps one seed); the answer's intervals pool the spread "
                "between seeds per measure, SAEs with one seed borrow it (empty: one seed, no intervals)",
            ),
            Param(
                "seed_layers",
                [3],
                [9],
                [2, 4],
                list_of(is_int(0), min_len=0, unique=True),
                "layers (among 'layers') where the sweep's base-width SAEs and Gaussian controls get extra_seeds "
                "(default: the deepest only, for time; the cells get them at every layer)",
            ),
            Param("top_n", 10, 20, 20, is_int(1), "strongest held-out activations per latent for its token statistics"),
            Param(
                "stats_split",
                "train",
                "train",
                "test",
                one_of(["train", "test"]),
                "cache split of the residual statistics (train: ~10x the tokens of test)",
            ),
            Param("threads", 1, 0, 0, is_int(0, 1024), "torch intra-op threads (0: torch's default)"),
        ],
        checks=[_check_06],
        after=["03_sae_training"],
    ),
)
