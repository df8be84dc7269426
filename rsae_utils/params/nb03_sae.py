"""Parameters of notebook 03_sae_training."""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.params.budget import check_budget, estimate_03
from rsae_utils.params.core import (
    LARGE_PROFILES,
    Config,
    Notebook,
    Param,
    is_bool,
    is_dict,
    is_float,
    is_int,
    is_str,
    list_of,
    one_of,
    optional,
    register,
)
from rsae_utils.paths import caches_root
from rsae_utils.sae.spec import ARCHITECTURES, TRAINERS, check_trainer
from rsae_utils.subject.corpus import probe_corpus
from rsae_utils.subject.models import TINY_RANDOM_SHAPE, validate_model_name
from rsae_utils.subject.variants import VARIANTS

EXECUTORS = ("local", "slurm", "submitit-local")  # rsae_utils.sae.jobs.EXECUTORS (a test keeps them equal)

# Models whose CPU harvest runs rsae_utils.sae.fastfwd's lean forward (harvest.planned_forward; a test keeps them equal)
_LEAN_MODELS = ("smollm2-135m", "tiny-random")
# (n_layers, d_model) of the models notebook 03 knows by name, so layer and k can be checked before any load.
_KNOWN_DIMS = {
    "smollm2-135m": (30, 576),
    "pythia-14m": (6, 128),
    "pythia-31m": (6, 256),
    "pythia-70m": (6, 512),
    "pythia-160m": (12, 768),
    "pythia-410m": (24, 1024),
    "pythia-1b": (16, 2048),
    "pythia-1.4b": (24, 2048),
    "pythia-2.8b": (32, 2560),
    "pythia-6.9b": (32, 4096),
    "pythia-12b": (36, 5120),
}


def known_model_dims(name: str) -> tuple[int, int] | None:
    """(n_layers, d_model) for a model name notebook 03 knows without loading it; None for other hub models."""
    key = name.strip().lower().removeprefix("eleutherai/").removesuffix("-deduped")
    if key == "tiny-random":
        return TINY_RANDOM_SHAPE["n_layers"], TINY_RANDOM_SHAPE["d_model"]
    return _KNOWN_DIMS.get(key)


def _check_03(cfg: Config) -> None:
    validate_model_name(cfg.model, cfg.revision)
    probe_corpus(cfg.corpus)  # an empty folder or binary files fail here, not inside the kernel
    if cfg.test_corpus is not None:
        probe_corpus(cfg.test_corpus)
    dims = known_model_dims(cfg.model)
    if dims is not None:
        n_layers, d_model = dims
        bad = [x for x in cfg.layers if x >= n_layers]
        if bad:
            raise ParameterError(
                f"parameter 'layers' must be within 0..{n_layers - 1} ({cfg.model} has {n_layers} layers); "
                f"got {list(cfg.layers)}"
            )
        d_sae = cfg.expansion * d_model
        if ARCHITECTURES[cfg.architecture].fixed_l0 and cfg.k >= d_sae:
            raise ParameterError(
                f"parameter 'k' must be < the number of latents, expansion x d_model = {cfg.expansion} x {d_model} "
                f"= {d_sae}; got {cfg.k}"
            )
    check_trainer(cfg.trainer, cfg.architecture, streaming=cfg.train_from == "stream")
    if cfg.harvest_dtype == "bfloat16" and (cfg.device != "cpu" or cfg.model.strip().lower() not in _LEAN_MODELS):
        raise ParameterError(
            f"parameter 'harvest_dtype' must be 'float32' or 'auto' unless device='cpu' and model is one of "
            f"{_LEAN_MODELS} (the lean forward, rsae_utils.sae.fastfwd); got {cfg.harvest_dtype!r}"
        )
    if cfg.n_spliced_windows > cfg.n_test_windows:
        raise ParameterError(
            f"parameter 'n_spliced_windows' must be <= n_test_windows ({cfg.n_test_windows}); "
            f"got {cfg.n_spliced_windows}"
        )
    if cfg.train_tokens < cfg.batch_size:
        raise ParameterError(
            f"parameter 'train_tokens' must be >= batch_size ({cfg.batch_size}); got {cfg.train_tokens}"
        )
    if dims is not None:
        _check_cache_fits(cfg, *dims)


def cache_bytes_03(cfg: Config, d_model: int) -> int:
    """Bytes the activation caches of a notebook-03 config take: every variant, every cached window and layer."""
    per_value = 2 if cfg.cache_dtype == "float16" else 4
    windows = cfg.n_test_windows + (cfg.n_train_windows if cfg.train_from == "cache" else 0)
    return len(cfg.variants) * windows * cfg.ctx * len(cfg.layers) * d_model * per_value


def _check_cache_fits(cfg: Config, n_layers: int, d_model: int) -> None:
    """Refuse, before any work, a run whose caches and SAEs cannot fit on the disk (at paper scale a cached training
    split is ~100 GB per layer), or whose memory need exceeds this machine's (caches already on disk count as
    space, since they are reused). A ``paper`` or ``gpu`` run prints its estimate first."""
    caches = caches_root(cfg.profile)
    existing = sum(f.stat().st_size for f in caches.rglob("*.safetensors")) if caches.exists() else 0
    budget = estimate_03(cfg, n_layers, d_model, cache_bytes_03(cfg, d_model))
    if cfg.profile in LARGE_PROFILES:
        print(budget.text(cfg), flush=True)
    check_budget(cfg, budget, existing)


register(
    "03_sae_training",
    Notebook(
        title="SAEs on trained and random transformers: activation caches, training, quality metrics (paper Fig. 2)",
        params=[
            Param(
                "model",
                "tiny-random",
                "smollm2-135m",
                "pythia-70m",
                is_str(),
                "model name: 'smollm2-135m' (embedded, offline), 'tiny-random' (smoke), a Pythia name (network)",
            ),
            Param(
                "revision", None, None, None, optional(is_str()), "hub revision of the trained model (Pythia: 'stepN')"
            ),
            Param(
                "variants",
                list(VARIANTS),
                list(VARIANTS),
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "model variants (PAPER.md section 1)",
            ),
            Param(
                "variant_seed", 42, 42, 42, is_int(0), "seed of the re-randomized variants (42 in the authors' code)"
            ),
            Param(
                "rerandomize_norms",
                True,
                True,
                True,
                is_bool(),
                "re-randomized variants: redraw the norm gains too (True, the authors' default) or keep them trained",
            ),
            Param(
                "embedding_scale",
                1.0,
                1.0,
                1.0,
                is_float(1e-6, 1e6),
                "multiply every variant's token embedding by this (not the control's noise; notebook 06's question)",
            ),
            Param(
                "layers",
                [0, 1, 3],
                [0, 4, 9, 14],
                [0, 1, 2, 3, 4, 5],
                list_of(is_int(0), unique=True),
                "residual-stream layers (blocks.L.hook_resid_post); the forward stops after the deepest",
                gpu=list(range(0, 15, 2)),
            ),
            Param(
                "corpus",
                "site-packages",
                "site-packages+docstrings",
                "hf:EleutherAI/rpj-v2-sample:train[:15%]",
                is_str(),
                "text source (rsae_utils.subject.corpus.load_corpus); the paper's: rpj-v2-sample train[:15%]; the "
                "default's adds the installed packages' docstrings to their documentation (~30x the text: notebook "
                "09's source, so its training-budget curves describe these SAEs' text)",
                gpu="site-packages+docstrings",
            ),
            Param(
                "test_corpus",
                None,
                None,
                "hf:EleutherAI/rpj-v2-sample:train[25%:30%]",
                optional(is_str()),
                "text source of the held-out windows (None: split off 'corpus' by document); the paper caches "
                "latents from the disjoint train[25%:30%]",
            ),
            Param(
                "max_corpus_chars",
                400_000,
                4_000_000,
                None,
                optional(is_int(1000)),
                "cap on the characters read from the corpus (None: all)",
                gpu=None,
            ),
            Param("ctx", 32, 128, 2048, is_int(8, 8192), "tokens per window (the paper: 2048)", gpu=256),
            Param(
                "n_train_windows",
                48,
                490,
                48_828,
                is_int(1),
                "training windows per variant (cached); default: 62,720 unique tokens, those of notebook 09's "
                "repetition pair, so the study measures what the default's 4.2 epochs cost",
                gpu=8192,
            ),
            Param(
                "n_test_windows",
                12,
                400,
                512,
                is_int(1),
                "held-out windows per variant (disjoint from training): the metrics, and notebook 04's latents "
                "(its paper protocol needs >= 50k tokens for 10 quantile bins x 10 windows per latent)",
                gpu=512,
            ),
            Param(
                "n_spliced_windows",
                6,
                8,
                256,
                is_int(1),
                "held-out windows used for the spliced CE/KL metrics (each costs a float32 forward of every later "
                "layer per SAE; default: 8, ~1,000 tokens, down from 12 to pay for the 4x longer training)",
                gpu=128,
            ),
            Param("window_seed", 0, 0, 0, is_int(0), "seed of the window sampling"),
            Param("harvest_batch", 8, 8, 32, is_int(1), "windows per forward when caching activations", gpu=32),
            Param(
                "harvest_dtype",
                "float32",
                "auto",
                "float32",
                one_of(["float32", "bfloat16", "auto"]),
                "compute dtype of the caching forward (CPU, Llama-style models: smollm2-135m, tiny-random): "
                "'float32' (as transformer-lens to ~1e-6), 'bfloat16' (matrix products in bfloat16: 1.7x faster here "
                "with avx512_bf16, ~2x with AMX-BF16, much slower on a laptop without either; cached activations "
                "then differ from float32 by 0.3-8% relative, most in deep layers of re-randomized variants) or "
                "'auto' (default: bfloat16 where the CPU has native bfloat16 and the lean forward runs, else "
                "float32, as notebook 09); the resolved value enters the cache key",
            ),
            Param(
                "cache_dtype",
                "float32",
                "float32",
                "float16",
                one_of(["float32", "float16"]),
                "dtype of the cached activations",
                gpu="float16",
            ),
            Param(
                "train_from",
                "cache",
                "cache",
                "stream",
                one_of(["cache", "stream"]),
                "SAE training data: 'cache' (the training split is cached once and read every epoch) or 'stream' "
                "(activations made on the fly, every layer's SAE in lockstep, nothing stored: needed at paper scale, "
                "where a cached training split is ~100 GB per layer; only the test split is cached)",
                gpu="stream",
            ),
            Param("architecture", "topk", "topk", "topk", one_of(list(ARCHITECTURES)), "SAE type: TopK or ReLU + L1"),
            Param(
                "trainer",
                "fast",
                "fast",
                "sae-lens",
                one_of(list(TRAINERS)),
                "SAE trainer: 'fast' (rsae_utils.sae.topk: the paper's sparsify rule, FVU + AuxK, unit-norm decoder; "
                "TopK only, from the cache; 3-8x sae-lens on a CPU at R >= 16) or 'sae-lens' (its SAETrainer; needed "
                "for ReLU SAEs and for train_from='stream')",
                gpu="sae-lens",
            ),
            Param(
                "matmul_dtype",
                "float32",
                "auto",
                "float32",
                one_of(["float32", "bfloat16", "auto"]),
                "fast trainer's encoder product: 'float32', 'bfloat16' (top-k chosen from a bf16 product, the chosen "
                "activations recomputed exactly in fp32; ~1.5x per step on CPUs with native bf16, held-out EV within "
                "0.001 of fp32) or 'auto' (bfloat16 where the CPU or GPU has native bf16, else float32)",
            ),
            Param("expansion", 4, 16, 64, is_int(1, 256), "R: latents = R x d_model (the paper: 64)", gpu=64),
            Param("k", 8, 32, 32, is_int(1), "TopK: active latents per token (the paper: 32)"),
            Param("l1_coefficient", 5.0, 5.0, 5.0, is_float(0.0), "ReLU SAE: L1 coefficient (sae-lens convention)"),
            Param(
                "train_tokens",
                6144,
                262_144,
                100_000_000,
                is_int(1),
                "tokens each SAE trains on (epochs over the cached training windows; the paper: 100M); default: "
                "one of notebook 09's budgets, 4.3x the 61,440 of earlier runs, the most the time budget allows",
                gpu=4_194_304,
            ),
            Param("batch_size", 256, 512, 4096, is_int(1), "SAE training batch, tokens", gpu=2048),
            Param(
                "lr",
                3e-3,
                1e-3,
                1.4e-4,
                is_float(0.0, 1.0),
                "Adam learning rate (paper: 2e-4 / sqrt(d_sae / 2^14), for 100M tokens; the default's 512 steps need "
                "larger ones: 2e-3 at R = 4 scaled by sparsify's 1/sqrt(d_sae) rule gives 1e-3 at R = 16)",
                gpu=4e-4,
            ),
            Param("sae_seed", 0, 0, 0, is_int(0), "seed of SAE initialisation and batch order"),
            Param(
                "exclude_boundary_token",
                True,
                True,
                True,
                is_bool(),
                "leave the document-boundary token (window start; an attention sink with ~100x the residual norm) "
                "out of SAE training and metrics",
            ),
            Param("device", "cpu", "cpu", "cuda", one_of(["cpu", "cuda", "mps"]), "torch device", gpu="cuda"),
            Param(
                "executor",
                "local",
                "local",
                "local",
                one_of(EXECUTORS),
                "where each variant's cache and SAEs are made: 'local' (this process), 'slurm' (one SLURM job per "
                "variant, an array, through submitit) or 'submitit-local' (the same jobs as local processes); the jobs "
                "write the same artifacts under the same keys, a failed job is resubmitted once",
            ),
            Param(
                "executor_options",
                {},
                {},
                {},
                is_dict(),
                "submitit's update_parameters for the jobs, e.g. {'timeout_min': 600, 'slurm_partition': 'gpu', "
                "'gpus_per_node': 1, 'mem_gb': 64}",
            ),
            Param(
                "torch_threads",
                1,
                None,
                None,
                optional(is_int(1, 256)),
                "CPU threads for torch (None: torch's default); the smoke model's tiny matrices run fastest on one",
            ),
        ],
        checks=[_check_03],
    ),
)
