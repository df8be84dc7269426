"""Parameters of notebook 09_training_budget: how the SAEs' measures move with training tokens.

``default`` is sized for the default run's time budget on a 2-core CPU: the trained and re-randomized models at
layer 9, one run per (variant, layer) to ~1M tokens with snapshots every 4x from 4k, on ~250k unique tokens of the
``site-packages+docstrings`` text (step-0 and layer 4 were cut to keep the default run under 60 minutes; the
committed long study has both). ``long`` carries the same study to 16.8M tokens on 4.2M unique tokens for the
trained and re-randomized models (step-0 to 1M), at notebook 03's two middle layers: ~3.3 h on 2 cores (77M
training tokens at ~11k tokens/s, a 12.6M-token harvest at ~3k tokens/s) with float16 caches (29 GB); all four
layers would double both the hours and the disk. Its runs save their state every 10 min and resume after an
interruption. Its figures go under ``figures/long``; ``gpu`` runs to 100M on RedPajama.
"""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import (
    Config,
    Notebook,
    Param,
    is_float,
    is_int,
    is_str,
    list_of,
    one_of,
    optional,
    register,
    shared_param,
)
from rsae_utils.params.sampling import check_sampling, sampling_params
from rsae_utils.subject.variants import VARIANTS


def _check_09(cfg: Config) -> None:
    check_sampling(cfg)
    if cfg.budget_stop < cfg.budget_start:
        raise ParameterError(
            f"parameter 'budget_stop' must be >= budget_start ({cfg.budget_start}); got {cfg.budget_stop}"
        )
    for name in ("budget_start", "repeat_budget"):
        if cfg[name] % cfg.batch_size:
            raise ParameterError(
                f"parameter {name!r} must be a multiple of batch_size ({cfg.batch_size}); got {cfg[name]}"
            )
    bad = [x for x in cfg.repeat_layers if x not in cfg.layers]
    if bad:
        raise ParameterError(f"parameter 'repeat_layers' must be among layers {list(cfg.layers)}; got {bad}")
    bad = [v for v in cfg.short_variants if v not in cfg.variants or v == cfg.variants[0]]
    if bad:
        raise ParameterError(
            f"parameter 'short_variants' must be among variants {list(cfg.variants)} and not the reference "
            f"{cfg.variants[0]!r}; got {bad}"
        )
    bad = [v for v in cfg.seed_variants if v not in cfg.variants]
    if bad:
        raise ParameterError(f"parameter 'seed_variants' must be among variants {list(cfg.variants)}; got {bad}")
    bad = [v for v in cfg.repeat_variants if v not in cfg.variants]
    if bad:
        raise ParameterError(f"parameter 'repeat_variants' must be among variants {list(cfg.variants)}; got {bad}")
    if cfg.n_train_windows // cfg.repeat_factor < 1:
        raise ParameterError(
            f"parameter 'repeat_factor' must be <= n_train_windows ({cfg.n_train_windows}); got {cfg.repeat_factor}"
        )


STUDY_VARIANTS = ["trained", "rerandomized_incl_emb", "step0"]
DEFAULT_VARIANTS = STUDY_VARIANTS[:2]

register(
    "09_training_budget",
    Notebook(
        title="How SAE measures move with training tokens: the training-budget study",
        params=[
            Param("model", "tiny-random", "smollm2-135m", "pythia-70m", is_str(), "model (notebook 03's names)"),
            Param(
                "variants",
                STUDY_VARIANTS,
                DEFAULT_VARIANTS,
                STUDY_VARIANTS,
                list_of(one_of(VARIANTS), unique=True),
                "model variants (the first is the reference of the trained-minus-random gaps; default: no step-0, "
                "whose EV moved 0.009-0.012 over 65k -> 262k and whose AUROCs sat at chance at 13c268d, and which the "
                "long study measures to 1M; -2 min)",
                long=STUDY_VARIANTS,
            ),
            Param(
                "layers",
                [1, 3],
                [9],
                [1, 3],
                list_of(is_int(0), unique=True),
                "residual-stream layers (default: the deeper of notebook 03's middle two, -4.5 min; long: both, 4 and "
                "9, as the default had them up to 0c288b8; all four would take ~2x its hours and disk)",
                long=[4, 9],
            ),
            Param(
                "corpus",
                "site-packages",
                "site-packages+docstrings",
                "hf:EleutherAI/rpj-v2-sample:train[:15%]",
                is_str(),
                "text (the docstrings add ~30x the text of the installed documentation: enough unique tokens)",
                gpu="hf:EleutherAI/rpj-v2-sample:train[:15%]",
            ),
            Param(
                "max_corpus_chars",
                400_000,
                4_000_000,
                None,
                optional(is_int(1000)),
                "cap on characters read",
                long=None,
                gpu=None,
            ),
            Param("ctx", 32, 128, 2048, is_int(8, 8192), "tokens per window", gpu=256),
            Param(
                "n_train_windows",
                48,
                1960,
                48_828,
                is_int(1),
                "training windows per variant (unique tokens = windows x ctx: 250,880 in the default)",
                long=32_768,
                gpu=8192,
            ),
            Param(
                "n_test_windows",
                12,
                128,
                512,
                is_int(1),
                "held-out windows (every measure is taken on them; default: 128, 16k tokens, down from 160 to pay for "
                "notebook 03's 4x longer training)",
            ),
            Param(
                "harvest_dtype",
                "float32",
                "auto",
                "float32",
                one_of(["float32", "bfloat16", "auto"]),
                "compute dtype of the caching forward (notebook 03's parameter; 'auto': bfloat16 where the CPU has "
                "native bf16, ~2x faster, activations within ~0.6% of float32 at layers 4 and 9 of the trained model)",
            ),
            Param("matmul_dtype", "float32", "auto", "float32", one_of(["float32", "bfloat16", "auto"]), "trainer's"),
            shared_param(  # registered before this table (the package imports the tables in order)
                "03_sae_training",
                "cache_dtype",
                help="dtype of the cached activations (notebook 03's; long: float16, 29 GB instead of 58 for 3 "
                "variants x 2 layers x 4.2M tokens)",
                long="float16",
            ),
            Param(
                "checkpoint_s",
                600.0,
                600.0,
                600.0,
                optional(is_float(0.0)),
                "save a training run's whole state at most every this many seconds and resume from it, bit-equal, "
                "after an interruption (None: never; the default's runs take ~2 min, so only long runs save one)",
            ),
            Param("expansion", 4, 16, 64, is_int(1, 256), "R (notebook 03's)"),
            Param("k", 8, 32, 32, is_int(1), "TopK k (notebook 03's)"),
            Param("batch_size", 256, 512, 4096, is_int(1), "SAE batch, tokens (notebook 03's)", gpu=2048),
            Param("lr", 3e-3, 1e-3, 1.4e-4, is_float(0.0, 1.0), "Adam lr, constant (notebook 03's)", gpu=4e-4),
            Param("budget_start", 256, 4096, 1_048_576, is_int(1), "smallest token budget"),
            Param(
                "budget_stop",
                4096,
                1_048_576,
                100_000_000,
                is_int(1),
                "largest token budget (budgets: start x factor^i up to it)",
                long=16_777_216,
                gpu=100_000_000,
            ),
            Param("budget_factor", 4, 4, 4, is_int(2, 100), "ratio of consecutive budgets"),
            Param(
                "short_variants",
                [],
                [],
                [],
                list_of(one_of(VARIANTS), min_len=0, unique=True),
                "variants whose main run stops `short_by` budgets early (long: step-0, whose EV changed by "
                "0.009-0.012 over 65k -> 262k at 13c268d, the closest to settled, and its AUROCs sat at chance: at 1M, "
                "saving ~50 min)",
                long=["step0"],
            ),
            Param(
                "short_by",
                1,
                2,
                1,
                is_int(1, 100),
                "how many budgets short_variants stop early (never below the first; 2: at 65,536 tokens in the "
                "default's budgets, at 1M in the long profile's)",
            ),
            Param(
                "seeds", [0, 1], [0, 1], [0, 1], list_of(is_int(0), unique=True), "SAE init seeds (same batch order)"
            ),
            Param(
                "seed_variants",
                STUDY_VARIANTS,
                ["trained", "rerandomized_incl_emb"],
                STUDY_VARIANTS,
                list_of(one_of(VARIANTS), unique=True),
                "variants whose runs get the other seeds (default: the trained and re-randomized models; step-0's "
                "seeds shared no latent at any budget either, at 13c268d)",
            ),
            Param(
                "seed_budget_max",
                1024,
                65_536,
                4_194_304,
                is_int(1),
                "the second seed trains up to this budget (the seed-shared fraction at the budgets up to it)",
                long=1_048_576,
            ),
            Param("shared_threshold", 0.7, 0.7, 0.7, is_float(0.0, 1.0), "cosine for 'shared' (Paulo & Belrose: 0.7)"),
            Param("repeat_layers", [3], [9], [3], list_of(is_int(0), unique=True), "layers of the repetition pair"),
            Param(
                "repeat_variants",
                ["trained", "rerandomized_incl_emb"],
                ["rerandomized_incl_emb"],
                ["trained", "rerandomized_incl_emb"],
                list_of(one_of(VARIANTS), unique=True),
                "variants of the repetition pair (default: the re-randomized model, whose held-out EV fell with "
                "repetition in issue 21's measurements; the trained pair costs ~40 s more)",
            ),
            Param("repeat_budget", 1024, 262_144, 4_194_304, is_int(1), "budget of the repetition pair"),
            Param("repeat_factor", 4, 4, 4, is_int(2, 1000), "the repetition run sees 1/this of the windows"),
            Param("n_top_pcs", 3, 3, 3, is_int(0, 64), "principal directions projected out for 'EV without them'"),
            *sampling_params({"n_latents": {"smoke": 8, "default": 100}, "min_examples": {"default": 20}}),
            Param("sampling_seed", 0, 0, 0, is_int(0), "seed of the latent sampling"),
        ],
        checks=[_check_09],
    ),
)
