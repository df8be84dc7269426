"""The one place where every notebook's parameters and profiles are defined.

A *profile* is a named parameter set: ``smoke`` (tiny, for tests), ``default`` (the embedded offline run on a
laptop CPU) and ``paper`` (the papers' settings; GPU and network). A notebook resolves its configuration with
``resolve(notebook, profile, overrides)``; the Makefile runner resolves the same way before it starts a kernel,
so an unknown name or a bad value stops the run with a message naming the parameter and what is allowed,
before any heavy work.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROFILES = ("smoke", "default", "paper")
# The five model variants of Heap et al. (PAPER.md section 1), in plotting order; the one list the project uses.
VARIANTS = ("trained", "rerandomized_incl_emb", "rerandomized_excl_emb", "step0", "control")


class ParameterError(ValueError):
    """A parameter is unknown or has a value outside what is allowed."""


# --------------------------------------------------------------------------------------------------------------
# Checkers: each takes (name, value) and raises ParameterError naming the parameter and the allowed values.
# --------------------------------------------------------------------------------------------------------------
Checker = Callable[[str, Any], None]


def _fail(name: str, allowed: str, value: Any) -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}")


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def is_int(lo: int | None = None, hi: int | None = None) -> Checker:
    allowed = "an integer" + _range_text(lo, hi)

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, allowed, value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_float(lo: float | None = None, hi: float | None = None) -> Checker:
    allowed = "a number" + _range_text(lo, hi)

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(name, allowed, value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def one_of(choices: Iterable[Any]) -> Checker:
    choices = tuple(choices)
    allowed = "one of " + ", ".join(repr(c) for c in choices)

    def check(name: str, value: Any) -> None:
        if value not in choices:
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def list_of(item: Checker, min_len: int = 1, unique: bool = False) -> Checker:
    allowed = f"a list of at least {min_len} item(s), each {getattr(item, 'allowed', 'valid')}"
    if unique:
        allowed += ", without repeats"

    def check(name: str, value: Any) -> None:
        if not isinstance(value, (list, tuple)) or len(value) < min_len:
            _fail(name, allowed, value)
        for i, v in enumerate(value):
            item(f"{name}[{i}]", v)
        if unique and len(set(map(repr, value))) != len(value):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_bool() -> Checker:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, bool):
            _fail(name, "True or False", value)

    check.allowed = "True or False"  # type: ignore[attr-defined]
    return check


def is_str(nonempty: bool = True) -> Checker:
    allowed = "a non-empty string" if nonempty else "a string"

    def check(name: str, value: Any) -> None:
        if not isinstance(value, str) or (nonempty and not value.strip()):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_dict() -> Checker:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            _fail(name, "a dict", value)

    check.allowed = "a dict"  # type: ignore[attr-defined]
    return check


def optional(inner: Checker) -> Checker:
    allowed = f"None or {getattr(inner, 'allowed', 'a valid value')}"

    def check(name: str, value: Any) -> None:
        if value is not None:
            inner(name, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


# --------------------------------------------------------------------------------------------------------------
# Parameter and notebook specs
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One parameter: its value in each profile, how it is checked, and what it means."""

    name: str
    smoke: Any
    default: Any
    paper: Any
    check: Checker
    help: str = ""

    def value(self, profile: str) -> Any:
        return {"smoke": self.smoke, "default": self.default, "paper": self.paper}[profile]


@dataclass(frozen=True)
class Notebook:
    params: Sequence[Param]
    # Cross-parameter checks: fn(cfg) raising ParameterError; run after every single-parameter check passed.
    checks: Sequence[Callable[[Config], None]] = ()
    # Notebooks whose outputs this one reads (the runner reruns it when they change).
    after: Sequence[str] = ()
    title: str = ""

    def names(self) -> list[str]:
        return [p.name for p in self.params]


class Config(Mapping):
    """Read-only resolved parameters of one notebook run (attribute and mapping access)."""

    def __init__(self, notebook: str, profile: str, values: dict[str, Any], overridden: Sequence[str] = ()):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "notebook", notebook)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "overridden", tuple(overridden))
        # Wall-clock start of the run this config belongs to: figure manifests report the runtime from here.
        object.__setattr__(self, "started", time.time())

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.notebook} has no parameter {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is read-only: change OVERRIDES in the parameters cell instead")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able record: notebook, profile and every parameter value."""
        return {"notebook": self.notebook, "profile": self.profile, "params": dict(self._values)}

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{k}</code></td><td><code>{v!r}</code></td><td>{'override' if k in self.overridden else ''}"
            f"</td></tr>"
            for k, v in self._values.items()
        )
        return f"<b>{self.notebook}</b> &mdash; profile <code>{self.profile}</code><table>{rows}</table>"

    def __repr__(self) -> str:
        return f"Config({self.notebook!r}, profile={self.profile!r}, {self._values!r})"


def _suggest(name: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def notebook_spec(notebook: str) -> Notebook:
    if notebook not in NOTEBOOKS:
        raise ParameterError(
            f"unknown notebook {notebook!r}{_suggest(notebook, list(NOTEBOOKS))}; allowed: {', '.join(NOTEBOOKS)}"
        )
    return NOTEBOOKS[notebook]


def resolve(notebook: str, profile: str = "default", overrides: Mapping[str, Any] | None = None) -> Config:
    """Validated parameters of ``notebook`` under ``profile`` with ``overrides`` applied."""
    spec = notebook_spec(notebook)
    if profile not in PROFILES:
        raise ParameterError(f"parameter 'PROFILE' must be one of {', '.join(map(repr, PROFILES))}; got {profile!r}")
    overrides = dict(overrides or {})
    names = spec.names()
    for key in overrides:
        if key not in names:
            raise ParameterError(
                f"unknown parameter {key!r} for notebook {notebook}{_suggest(key, names)}; "
                f"allowed: {', '.join(names)}"
            )
    values = {p.name: overrides.get(p.name, p.value(profile)) for p in spec.params}
    for p in spec.params:
        try:
            p.check(p.name, values[p.name])
        except ParameterError as err:
            where = "override" if p.name in overrides else f"profile {profile!r}"
            raise ParameterError(f"{notebook} ({where}): {err}") from None
    cfg = Config(notebook, profile, values, overridden=list(overrides))
    for check in spec.checks:
        try:
            check(cfg)
        except ParameterError as err:
            raise ParameterError(f"{notebook}: {err}") from None
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``name=value`` from the command line; the value is a Python literal, else a plain string."""
    import ast

    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like name=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


# ==============================================================================================================
# Per-notebook parameters. Each block is owned by the notebook it configures.
# ==============================================================================================================
NOTEBOOKS: dict[str, Notebook] = {}

# ---- 01_toy_superposition ----
def _check_01(cfg: Config) -> None:
    if cfg.n_dense >= cfg.n_sparse:
        raise ParameterError(
            f"parameter 'n_dense' must be < n_sparse ({cfg.n_sparse}) for superposition; got {cfg.n_dense}"
        )


NOTEBOOKS["01_toy_superposition"] = Notebook(
    title="Toy superposition: sparse features through a random MLP",
    params=[
        Param("n_samples", 2000, 10_000, 10_000, is_int(100, 10_000_000), "samples of the sparse features"),
        Param("n_sparse", 3, 3, 3, is_int(2, 64), "number of sparse Lomax features (n_s)"),
        Param("n_dense", 2, 2, 2, is_int(1, 63), "dense dimension they are projected to (n_d)"),
        Param("hidden_mult", 4, 4, 4, is_int(1, 64), "MLP hidden width = hidden_mult x n_dense"),
        Param("seed", 7, 7, 7, is_int(0, 2**31 - 1), "seed of the data, D and the MLP shown in the figure"),
        Param("top_share", 0.1, 0.1, 0.1, is_float(0.001, 1.0), "share of farthest samples the ray statistics use"),
        Param("angle_deg", 5.0, 5.0, 5.0, is_float(0.1, 90.0), "window (degrees) of the near-ray share"),
        Param("n_repeats", 5, 20, 50, is_int(1, 10_000), "seeds 0..n_repeats-1 for the robustness table"),
    ],
    checks=[_check_01],
)
# ---- end 01_toy_superposition ----

# ---- 02_mmcs_goldilocks ----
def _l1_grid(lo: float, hi: float, n: int) -> list[float]:
    return [float(f"{10 ** (lo + (hi - lo) * i / (n - 1)):.6g}") for i in range(n)]


def _check_02(cfg: Config) -> None:
    if cfg.mean_active * 2 * (1 - cfg.decay) / (1 - cfg.decay**cfg.n_features) > 1:
        raise ParameterError(
            f"parameter 'mean_active' is too large for decay {cfg.decay} and {cfg.n_features} features "
            f"(a feature's probability would exceed 1); got {cfg.mean_active}"
        )
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParameterError("parameter 'device' is 'cuda' but no CUDA device is visible; allowed: 'cpu', 'auto'")


NOTEBOOKS["02_mmcs_goldilocks"] = Notebook(
    title="MMCS Goldilocks zone of L1 SAEs on synthetic sparse data",
    params=[
        Param("n_features", 64, 512, 512, is_int(2, 100_000), "ground-truth features G"),
        Param("d_model", 32, 256, 256, is_int(2, 100_000), "data dimension h"),
        Param("mean_active", 5.0, 5.0, 5.0, is_float(0.01, 1000.0), "mean number of active features per sample"),
        Param("decay", 0.99, 0.99, 0.99, is_float(0.5, 1.0), "frequency decay lambda: p_i ~ lambda**i"),
        Param("mlp_ratio", 4, 4, 4, is_int(1, 64), "hidden width of the random MLP = mlp_ratio x d_model"),
        Param("world_seed", 0, 0, 0, is_int(0, 2**31 - 1), "seed of the features, correlations and MLP"),
        Param(
            "conditions",
            ["raw", "mlp", "gaussian"],
            ["raw", "mlp", "gaussian"],
            ["raw", "mlp", "gaussian"],
            list_of(one_of(["raw", "mlp", "gaussian"]), unique=True),
            "data conditions: raw, random MLP, Gaussian control",
        ),
        Param("dict_sizes", [64, 128], [512, 1024], [512, 1024, 2048, 4096], list_of(is_int(2, 1 << 20), unique=True),
              "SAE dictionary sizes (one line each)"),
        Param("l1_values", _l1_grid(-2, 1, 5), _l1_grid(-1.5, 0.5, 5), _l1_grid(-3, 2, 21),
              list_of(is_float(1e-8, 1e6), min_len=2, unique=True), "L1 coefficients (log-spaced grid)"),
        Param("seeds", [0, 1], [0, 1], [0, 1, 2, 3, 4], list_of(is_int(0, 2**31 - 1), unique=True),
              "seeds: each draws its own data stream and SAE initialisation"),
        Param("steps", 150, 900, 20_000, is_int(1, 10_000_000), "optimiser steps (one fresh batch each)"),
        Param("lr", 1e-2, 5e-3, 1e-3, is_float(1e-7, 1.0), "Adam learning rate"),
        Param("adam_beta2", 0.99, 0.99, 0.999, is_float(0.0, 0.999999),
              "Adam beta2 (0.99 learns rare features much faster than PyTorch's 0.999)"),
        Param("batch", 64, 256, 256, is_int(1, 1 << 20), "samples per step"),
        Param("decay_frac", 0.2, 0.2, 0.0, is_float(0.0, 1.0), "final share of steps with linear lr decay to 0"),
        Param("n_eval", 1024, 8192, 16384, is_int(16, 10_000_000), "held-out samples for L0, FVU and dead latents"),
        Param("device", "cpu", "cpu", "auto", one_of(["cpu", "cuda", "auto"]), "where to train (auto: cuda if any)"),
        Param("use_cache", True, True, True, is_bool(), "reuse a finished sweep with the same parameters and code"),
        Param("threads", 1, 0, 0, is_int(0, 1024),
              "torch intra-op threads for the sweep (0: torch's default, one per core; 1 is faster for tiny sweeps)"),
        Param("seeds_per_program", 0, 0, 1, is_int(0, 1_000_000),
              "seeds trained together in one batched program (0: all; 1 bounds memory at paper scale)"),
    ],
    checks=[_check_02],
)
# ---- end 02_mmcs_goldilocks ----

# ---- 03_sae_training ----
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
        from rsae_utils.models import TINY_RANDOM_SHAPE

        return TINY_RANDOM_SHAPE["n_layers"], TINY_RANDOM_SHAPE["d_model"]
    return _KNOWN_DIMS.get(key)


def _check_03(cfg: Config) -> None:
    from rsae_utils.corpus import validate_corpus_source
    from rsae_utils.models import validate_model_name

    validate_model_name(cfg.model, cfg.revision)
    validate_corpus_source(cfg.corpus)
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
        if cfg.architecture == "topk" and cfg.k >= d_sae:
            raise ParameterError(
                f"parameter 'k' must be < the number of latents, expansion x d_model = {cfg.expansion} x {d_model} "
                f"= {d_sae}; got {cfg.k}"
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
        _check_cache_fits(cfg, dims[1])


def cache_bytes_03(cfg: Config, d_model: int) -> int:
    """Bytes the activation caches of a notebook-03 config take: every variant, every cached window and layer."""
    per_value = 2 if cfg.cache_dtype == "float16" else 4
    windows = cfg.n_test_windows + (cfg.n_train_windows if cfg.train_from == "cache" else 0)
    return len(cfg.variants) * windows * cfg.ctx * len(cfg.layers) * d_model * per_value


def _check_cache_fits(cfg: Config, d_model: int) -> None:
    """Refuse, before any work, a run whose caches cannot fit on the disk (at paper scale a cached training split
    is ~100 GB per layer); caches already on disk count as space, since they are reused."""
    import shutil

    from rsae_utils.paths import work_dir

    root = work_dir(cfg.profile)
    caches = root / "caches"
    existing = sum(f.stat().st_size for f in caches.rglob("*.safetensors")) if caches.exists() else 0
    need, free = cache_bytes_03(cfg, d_model), shutil.disk_usage(root).free + existing
    if need > 0.95 * free:
        hints = ["train_from='stream' (SAEs train on activations made on the fly)"] if cfg.train_from == "cache" else []
        hints += ["fewer windows or layers"] + (["cache_dtype='float16'"] if cfg.cache_dtype == "float32" else [])
        raise ParameterError(
            f"parameter 'n_train_windows' / 'train_from': the activation caches would take {need / 1e9:,.1f} GB "
            f"({len(cfg.variants)} variants x windows x {cfg.ctx} tokens x {len(cfg.layers)} layers x {d_model} "
            f"values, {cfg.cache_dtype}) but {free / 1e9:,.1f} GB is free under {root}; use {', or '.join(hints)}"
        )


NOTEBOOKS["03_sae_training"] = Notebook(
    title="SAEs on trained and random transformers: activation caches, training, quality metrics (paper Fig. 2)",
    params=[
        Param("model", "tiny-random", "smollm2-135m", "pythia-70m", is_str(),
              "model name: 'smollm2-135m' (embedded, offline), 'tiny-random' (smoke), a Pythia name (network)"),
        Param("revision", None, None, None, optional(is_str()), "hub revision of the trained model (Pythia: 'stepN')"),
        Param("variants", list(VARIANTS), list(VARIANTS), list(VARIANTS),
              list_of(one_of(VARIANTS), unique=True), "model variants (PAPER.md section 1)"),
        Param("variant_seed", 42, 42, 42, is_int(0), "seed of the re-randomized variants (42 in the authors' code)"),
        Param("layers", [0, 1, 3], [0, 4, 9, 14], [0, 1, 2, 3, 4, 5], list_of(is_int(0), unique=True),
              "residual-stream layers (blocks.L.hook_resid_post); the forward stops after the deepest"),
        Param("corpus", "site-packages", "site-packages", "hf:togethercomputer/RedPajama-Data-1T-Sample", is_str(),
              "text source (rsae_utils.corpus.load_corpus)"),
        Param("max_corpus_chars", 400_000, 4_000_000, None, optional(is_int(1000)),
              "cap on the characters read from the corpus (None: all)"),
        Param("ctx", 32, 128, 2048, is_int(8, 8192), "tokens per window (the paper: 2048)"),
        Param("n_train_windows", 48, 320, 48_828, is_int(1), "training windows per variant (cached)"),
        Param("n_test_windows", 12, 32, 512, is_int(1), "held-out windows per variant (disjoint from training)"),
        Param("n_spliced_windows", 6, 12, 256, is_int(1),
              "held-out windows used for the spliced CE/KL metrics (each costs a partial forward per layer)"),
        Param("window_seed", 0, 0, 0, is_int(0), "seed of the window sampling"),
        Param("harvest_batch", 8, 8, 32, is_int(1), "windows per forward when caching activations"),
        Param("cache_dtype", "float32", "float32", "float16", one_of(["float32", "float16"]),
              "dtype of the cached activations"),
        Param("train_from", "cache", "cache", "stream", one_of(["cache", "stream"]),
              "SAE training data: 'cache' (the training split is cached once and read every epoch) or 'stream' "
              "(activations made on the fly, every layer's SAE in lockstep, nothing stored: needed at paper scale, "
              "where a cached training split is ~100 GB per layer; only the test split is cached)"),
        Param("architecture", "topk", "topk", "topk", one_of(["topk", "relu"]), "SAE type: TopK or ReLU + L1"),
        Param("expansion", 4, 4, 64, is_int(1, 256), "R: latents = R x d_model (the paper: 64)"),
        Param("k", 8, 32, 32, is_int(1), "TopK: active latents per token (the paper: 32)"),
        Param("l1_coefficient", 5.0, 5.0, 5.0, is_float(0.0), "ReLU SAE: L1 coefficient (sae-lens convention)"),
        Param("train_tokens", 6144, 61_440, 100_000_000, is_int(1),
              "tokens each SAE trains on (epochs over the cached training windows; the paper: 100M)"),
        Param("batch_size", 256, 512, 4096, is_int(1), "SAE training batch, tokens"),
        Param("lr", 3e-3, 2e-3, 1.4e-4, is_float(0.0, 1.0), "Adam learning rate (paper: 2e-4 / sqrt(d_sae / 2^14))"),
        Param("sae_seed", 0, 0, 0, is_int(0), "seed of SAE initialisation and batch order"),
        Param("exclude_boundary_token", True, True, True, is_bool(),
              "leave the document-boundary token (window start; an attention sink with ~100x the residual norm) "
              "out of SAE training and metrics"),
        Param("device", "cpu", "cpu", "cuda", one_of(["cpu", "cuda", "mps"]), "torch device"),
        Param("torch_threads", 1, None, None, optional(is_int(1, 256)),
              "CPU threads for torch (None: torch's default); the smoke model's tiny matrices run fastest on one"),
    ],
    checks=[_check_03],
)
# ---- end 03_sae_training ----

# ---- 04_autointerp ----
_AI_BACKENDS = ("local", "openai")
_URL_RE = r"^https?://[A-Za-z0-9.\-_\[\]]+(:\d{1,5})?(/[^\s]*)?$"


def _check_04(cfg: Config) -> None:
    import re

    if cfg.explain_pool < cfg.n_explain:
        raise ParameterError(
            f"parameter 'explain_pool' must be >= n_explain ({cfg.n_explain}); got {cfg.explain_pool}"
        )
    if cfg.min_examples < cfg.n_explain + cfg.n_bins:
        raise ParameterError(
            f"parameter 'min_examples' must be >= n_explain + n_bins ({cfg.n_explain + cfg.n_bins}) so every "
            f"sampled latent has explainer examples and one window per quantile bin; got {cfg.min_examples}"
        )
    if "openai" in cfg.llm_backends:
        if cfg.endpoint_url is None or not re.match(_URL_RE, cfg.endpoint_url):
            raise ParameterError(
                "parameter 'endpoint_url' must be the http(s) base URL of an OpenAI-compatible server, such as "
                f"http://127.0.0.1:8000/v1, when llm_backends has 'openai'; got {cfg.endpoint_url!r}"
            )
        if not cfg.endpoint_model:
            raise ParameterError(
                "parameter 'endpoint_model' must name the model the endpoint serves (e.g. "
                f"'meta-llama/Llama-3.1-70B-Instruct') when llm_backends has 'openai'; got {cfg.endpoint_model!r}"
            )


NOTEBOOKS["04_autointerp"] = Notebook(
    title="Auto-interpretability: explanations, detection and fuzzing scores, token-identity baseline",
    params=[
        Param("split", "test", "test", "test", one_of(["test", "train"]),
              "cache split the examples come from ('test': held out from SAE training; 'train' exists only when "
              "notebook 03 ran with train_from='cache')"),
        Param("max_contexts", None, None, None, optional(is_int(1)), "cap on cached contexts read per SAE"),
        Param("window_len", 32, 32, 32, is_int(2, 4096), "tokens per example window (the paper: 32)"),
        Param("n_latents", 8, 40, 100, is_int(1), "latents sampled per SAE (the paper: 100)"),
        Param("min_examples", 4, 16, 200, is_int(1),
              "activating windows a latent needs to be sampled (the paper: 200 in a 10M-token cache)"),
        Param("n_explain", 2, 8, 40, is_int(1), "explainer examples per latent (the paper: 40)"),
        Param("explain_pool", 3, 16, 100, is_int(1),
              "explainer examples are drawn at random from this many top-activating windows"),
        Param("n_bins", 2, 5, 10, is_int(1), "activation-quantile bins of the scoring positives (the paper: 10)"),
        Param("per_bin", 1, 2, 10, is_int(1), "scoring positives drawn per bin (the paper: 10)"),
        Param("n_negatives", 3, 10, 100, is_int(0), "non-activating scoring windows per latent (the paper: ~100)"),
        Param("batch_size", 5, 5, 5, is_int(1, 50), "windows per scorer prompt (the paper: 5)"),
        Param("mark_frac", 0.3, 0.3, 0.3, is_float(0.0, 1.0),
              "a token is marked active when its activation >= mark_frac x the window max (the paper: 0.3)"),
        Param("scorers", ["detection", "fuzzing"], ["detection", "fuzzing"], ["detection", "fuzzing"],
              list_of(one_of(["detection", "fuzzing"]), unique=True), "scorers to run"),
        Param("top_k_tokens", 10, 10, 10, is_int(1), "token baseline: top tokens by activation mass it keeps"),
        Param("single_token_threshold", 0.9, 0.9, 0.9, is_float(0.0, 1.0),
              "a latent is single-token when one token id holds at least this share of its activation mass"),
        Param("llm_backends", ["local"], ["local"], ["openai"], list_of(one_of(_AI_BACKENDS), min_len=0, unique=True),
              "LLM explainer/scorers besides the token baseline: 'local' (SmolLM2-135M-Instruct, offline), "
              "'openai' (an OpenAI-compatible endpoint: endpoint_url + endpoint_model)"),
        Param("endpoint_url", None, None, "http://127.0.0.1:8000/v1", optional(is_str()),
              "base URL of the OpenAI-compatible server (vLLM, Ollama, llama.cpp server, hosted API)"),
        Param("endpoint_model", None, None, "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", optional(is_str()),
              "model name the endpoint serves (the paper: Llama-3.1-70B-Instruct, AWQ int4, on vLLM)"),
        Param("explainer_max_tokens", 24, 32, 100, is_int(1, 1000), "token budget of an explanation"),
        Param("llm_n_latents", 1, 3, 100, is_int(0), "latents per SAE the LLM explains and scores"),
        Param("llm_variants", ["trained"], ["trained", "rerandomized_incl_emb"], list(VARIANTS),
              list_of(one_of(VARIANTS), unique=True), "variants whose SAEs the LLM scores"),
        Param("llm_layers", [0], [9], None, optional(list_of(is_int(0), unique=True)),
              "layers whose SAEs the LLM scores (None: every layer)"),
        Param("seed", 0, 0, 0, is_int(0), "seed of latent and example sampling, batch order and fuzzing marks"),
        Param("device", "cpu", "cpu", "cuda", one_of(["cpu", "cuda", "mps"]), "torch device the SAEs encode on"),
    ],
    checks=[_check_04],
    after=["03_sae_training"],
)
# ---- end 04_autointerp ----

# ---- 05_roc_entropy ----
NOTEBOOKS["05_roc_entropy"] = Notebook(
    title="ROC curves (paper Fig. 1), AUROC and token entropy against layer, token-baseline gap, latent browser",
    params=[
        Param("n_boot", 20, 100, 100, is_int(2), "bootstrap resamples of each pooled ROC curve (the paper: 100)"),
        Param("n_grid", 101, 101, 101, is_int(11, 10_001), "FPR grid points of the bootstrap band (the paper: 101)"),
        Param("browser_latents", 5, 30, 100, is_int(1), "latents per SAE shown in the latent browser"),
        Param("browser_examples", 3, 10, 20, is_int(1), "top windows shown per latent in the browser"),
        Param("seed", 0, 0, 0, is_int(0), "seed of the bootstrap"),
    ],
    after=["04_autointerp"],
)
# ---- end 05_roc_entropy ----
