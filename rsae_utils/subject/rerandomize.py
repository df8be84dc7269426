"""How the five model variants of Heap et al. (2025) are made from a loaded model and a seed.

Names, labels and descriptions live in :mod:`rsae_utils.subject.variants` (the registry).

=======================  =====================================================================================
trained                  the loaded model itself (a copy)
rerandomized_incl_emb    every parameter tensor redrawn IID N(mean, std) with that tensor's own scalar mean and std
rerandomized_excl_emb    the same, but the token embedding W_E and the unembedding W_U (and b_U) stay trained
step0                    Pythia: its published ``step0`` checkpoint; any other model: the architecture's own
                         initializer (the record and every label say so)
control                  the trained model, with each token's input embedding replaced on every forward by fresh
                         N(0, 1) noise (so a token has no consistent embedding)
=======================  =====================================================================================

Decisions (see also the module docs of ``make_variant``):

* **Norm gains are re-randomized by default** (``rerandomize_norms=True``). The paper says "every parameter
  tensor", and the authors' re-randomization class defaults to re-randomizing layer-norm parameters too. A gain
  vector's own mean and std are used, so gains stay centred where they were (near 1 for most models), only their
  per-channel pattern is destroyed. A tensor whose std is 0 (e.g. a freshly initialized all-ones gain, the
  zero biases transformer-lens adds to Llama models) or that has a single element is kept as it is: its mean
  *is* its value, and redrawing it with std 0 would change nothing.
* **Tied embeddings stay tied**: SmolLM2 ties W_U to W_E. The authors re-randomized the Hugging Face model's
  parameters, where a tied matrix is one tensor; so W_E is redrawn once and W_U set to its transpose.
* transformer-lens splits some Hugging Face tensors (Pythia's fused query_key_value becomes W_Q, W_K, W_V and
  their biases), so the per-tensor statistics are taken per *transformer-lens* tensor: a finer split than the
  authors' for Pythia, identical for Llama models (whose q/k/v projections are separate tensors anyway).
* The input model is never modified: every variant is a deep copy.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, RMSNorm
from transformers import AutoModelForCausalLM

from rsae_utils.errors import ParameterError
from rsae_utils.subject.models import LoadedModel, hooked_from_llama_hf, load_model
from rsae_utils.subject.variants import (
    DESCRIPTIONS,
    STEP0_CHECKPOINT,
    STEP0_INITIALIZER,
    validate_variant,
    variant_label,
)

# SmolLM2-135M's published config uses initializer_range = 1/24 (= 1/sqrt(d_model)); the GGUF file does not carry
# this field, so transformers would fall back to its generic 0.02. The step-0 stand-in uses the model's own value.
SMOLLM2_INITIALIZER_RANGE = 0.041666666666666664

# Parameters that belong to the token embedding / unembedding (kept trained by rerandomized_excl_emb).
EMBEDDING_PARAMS = ("embed.W_E", "unembed.W_U", "unembed.b_U")


def norm_parameter_names(model: Any) -> set[str]:
    """Names of the gain/bias parameters of every LayerNorm/RMSNorm module of a HookedTransformer."""
    names = set()
    for mod_name, module in model.named_modules():
        if isinstance(module, (LayerNorm, RMSNorm)):
            for p_name, _ in module.named_parameters(recurse=False):
                names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


@torch.no_grad()
def rerandomize_(
    model: Any,
    seed: int,
    include_embeddings: bool = True,
    rerandomize_norms: bool = True,
    tied_embeddings: bool = False,
) -> dict:
    """Redraw parameters of ``model`` in place: each tensor IID N(its mean, its std). Returns a summary.

    Tensors are visited in ``named_parameters`` order with one CPU ``torch.Generator`` seeded with ``seed``, so the
    result depends only on the seed and the architecture (not on the device or the global RNG).
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    norms = norm_parameter_names(model)
    redrawn, kept = [], {}
    for name, param in model.named_parameters():
        if not include_embeddings and name in EMBEDDING_PARAMS:
            kept[name] = "embedding kept trained"
            continue
        if tied_embeddings and name == "unembed.W_U":
            kept[name] = "tied: set to W_E transposed"
            continue
        if not rerandomize_norms and name in norms:
            kept[name] = "norm parameter kept (rerandomize_norms=False)"
            continue
        if param.numel() <= 1:
            kept[name] = "single element"
            continue
        std_t, mean_t = torch.std_mean(param.detach())
        mean, std = mean_t.item(), std_t.item()
        if not (std > 0 and math.isfinite(std) and math.isfinite(mean)):
            kept[name] = "std 0"
            continue
        # Drawn on the CPU generator whatever the device, so a seed gives the same weights on CPU and GPU; a CPU
        # tensor is filled in place (no temporary: the embedding alone is 28M values).
        if param.device.type == "cpu" and param.dtype == torch.float32 and param.is_contiguous():
            param.normal_(mean, std, generator=gen)
        else:
            param.copy_(torch.empty(param.shape, dtype=torch.float32).normal_(mean, std, generator=gen))
        redrawn.append(name)
    if tied_embeddings and include_embeddings:
        model.unembed.W_U.copy_(model.embed.W_E.T)
    return {"n_redrawn": len(redrawn), "n_kept": len(kept), "redrawn": redrawn, "kept": kept}


class EmbeddingNoise:
    """Forward hook for ``hook_embed`` that returns fresh N(0, std^2) noise of the embedding's shape on every call.

    The noise comes from a CPU ``torch.Generator`` owned by the hook: two forwards differ, but the sequence of
    noises is fixed by the seed (``reset()`` rewinds it).
    """

    def __init__(self, seed: int, std: float = 1.0):
        self.seed = int(seed)
        self.std = float(std)
        self.calls = 0
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def reset(self) -> None:
        self.generator.manual_seed(self.seed)
        self.calls = 0

    def __call__(self, value: torch.Tensor, hook: Any = None) -> torch.Tensor:
        self.calls += 1
        noise = torch.randn(value.shape, generator=self.generator, dtype=torch.float32) * self.std
        return noise.to(device=value.device, dtype=value.dtype)


def _device_of(model: Any) -> str:
    return str(next(model.parameters()).device)


def _step0(loaded: LoadedModel, seed: int) -> tuple[Any, dict]:
    """The step-0 model: Pythia's checkpoint, else a fresh draw from the architecture's own initializer."""
    device = _device_of(loaded.model)
    if loaded.has_step0_checkpoint:
        model = load_model(loaded.name, device=device, revision="step0").model
        return model, {"step0_source": STEP0_CHECKPOINT, "initializer": f"hub:{loaded.name}@step0"}
    if loaded.family == "llama-gguf":
        # The architecture's own initializer is transformers' LlamaPreTrainedModel init: N(0, initializer_range)
        # for every linear and embedding matrix, RMSNorm gains 1, tied unembedding.
        hf_config = copy.deepcopy(loaded.hf_config)
        hf_config.initializer_range = SMOLLM2_INITIALIZER_RANGE
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            hf_model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        model = hooked_from_llama_hf(hf_model, n_ctx=loaded.model.cfg.n_ctx, device=device)
        del hf_model
        return model, {
            "step0_source": STEP0_INITIALIZER,
            "initializer": f"transformers LlamaForCausalLM init, N(0, {SMOLLM2_INITIALIZER_RANGE:.6f}), gains 1",
        }
    # tiny-random and hub models without checkpoints: transformer-lens's initializer for the same config (weights
    # by cfg.init_mode, norm gains 1, biases 0), seeded.
    cfg = copy.deepcopy(loaded.model.cfg)
    cfg.seed = int(seed)
    cfg.init_weights = True
    cfg.device = "cpu"
    with torch.random.fork_rng(devices=[]):
        model = HookedTransformer(cfg, tokenizer=getattr(loaded.model, "tokenizer", None), move_to_device=False)
    if loaded.tied_embeddings:
        with torch.no_grad():
            model.unembed.W_U.copy_(model.embed.W_E.T)
    model = model.to(device, print_details=False)
    return model, {
        "step0_source": STEP0_INITIALIZER,
        "initializer": f"transformer-lens init_weights (init_mode={cfg.init_mode})",
    }


def variant_options(
    rerandomize_norms: bool = True, embedding_scale: float = 1.0, output_scale: float = 1.0
) -> dict[str, Any]:
    """The options of :func:`make_variant` that differ from its defaults, as keyword arguments ({} for the variants
    as the paper makes them). A cache records them and is keyed by them."""
    out: dict[str, Any] = {}
    if not rerandomize_norms:
        out["rerandomize_norms"] = False
    if float(embedding_scale) != 1.0:
        out["embedding_scale"] = float(embedding_scale)
    if float(output_scale) != 1.0:
        out["output_scale"] = float(output_scale)
    return out


def options_tag(options: dict[str, Any]) -> str:
    """A short name for a set of :func:`variant_options`: "" for none, else e.g. "norms-kept", "emb-x16"."""
    parts = []
    if options.get("rerandomize_norms") is False:
        parts.append("norms-kept")
    if "embedding_scale" in options:
        parts.append(f"emb-x{options['embedding_scale']:g}")
    if "output_scale" in options:
        parts.append(f"out-x{options['output_scale']:g}")
    return "_".join(parts)


def _rerandomized_(
    model: Any, variant: str, seed: int, rerandomize_norms: bool, tied: bool, output_scale: float
) -> dict[str, Any]:
    """Apply the paper's rule to ``model`` in place (then the output-projection scale); the record's fields."""
    include = variant == "rerandomized_incl_emb"
    summary = rerandomize_(
        model, seed, include_embeddings=include, rerandomize_norms=rerandomize_norms, tied_embeddings=tied
    )
    norms = norm_parameter_names(model)
    out = {
        **summary,
        "layernorm_rerandomized": any(n in norms for n in summary["redrawn"]),
        "embeddings_rerandomized": include,
    }
    if output_scale != 1.0:
        with torch.no_grad():
            for block in model.blocks:
                block.attn.W_O.mul_(float(output_scale))
                block.mlp.W_out.mul_(float(output_scale))
        out["output_scale"] = float(output_scale)
    return out


def _check_scale(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ParameterError(f"parameter {name!r} must be a number > 0; got {value!r}")


def make_variant(
    loaded: LoadedModel,
    variant: str,
    seed: int = 42,
    rerandomize_norms: bool = True,
    control_noise_std: float = 1.0,
    embedding_scale: float = 1.0,
    output_scale: float = 1.0,
) -> tuple[Any, dict]:
    """Make ``variant`` of ``loaded`` (never modifying it); return ``(model, record)``.

    ``seed`` drives the re-randomization, the step-0 initializer (when there is no checkpoint) and the control's
    noise stream. ``record`` is JSON-able: variant, label, seed, description, step0_source (None except for step0),
    layernorm_rerandomized, embeddings_rerandomized, model name/source, and details of what was kept.

    ``embedding_scale`` multiplies the token embedding W_E once the variant is made (a tied unembedding follows, so
    the tie holds); notebook 06 uses it to ask whether the size of the embedding against the blocks' writes is what
    sets a random model's residual stream apart. It has no effect on the control, whose embedding is noise.

    ``output_scale`` multiplies each block's two output projections (W_O, W_out) of a re-randomized variant once
    redrawn, i.e. draws them with their trained mean and std times the scale: notebook 06 sets it to wang_init's
    ratio to small_init (sqrt(10) / n_layers) to ask whether depth-scaled writes keep the token in the residual.
    """
    validate_variant(variant)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParameterError(f"parameter 'seed' must be an integer; got {seed!r}")
    _check_scale("embedding_scale", embedding_scale)
    _check_scale("output_scale", output_scale)
    if output_scale != 1.0 and not variant.startswith("rerandomized"):
        raise ParameterError(
            f"parameter 'output_scale' applies to the re-randomized variants only; got {output_scale} for {variant!r}"
        )
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "description": DESCRIPTIONS[variant],
        "model": loaded.name,
        "model_source": loaded.source,
        "step0_source": None,
        "layernorm_rerandomized": False,
        "embeddings_rerandomized": False,
        "rerandomize_norms": rerandomize_norms,
    }
    if variant == "step0":
        model, extra = _step0(loaded, seed)
        record.update(extra)
        record["embeddings_rerandomized"] = True
        record["description"] += (
            " (Pythia's published step0 checkpoint)"
            if extra["step0_source"] == STEP0_CHECKPOINT
            else f" ({extra['initializer']}; the model publishes no step0 checkpoint)"
        )
    else:
        model = copy.deepcopy(loaded.model)
        if variant.startswith("rerandomized"):
            record.update(_rerandomized_(model, variant, seed, rerandomize_norms, loaded.tied_embeddings, output_scale))
        elif variant == "control":
            hook = EmbeddingNoise(seed, std=control_noise_std)
            model.add_perma_hook("hook_embed", hook)
            model.rsae_embedding_noise = hook  # reachable for reset() / inspection
            record["noise"] = f"N(0, {control_noise_std}^2) per element at hook_embed, fresh every forward"
    if embedding_scale != 1.0 and variant != "control":
        with torch.no_grad():
            model.embed.W_E.mul_(float(embedding_scale))
            if loaded.tied_embeddings:
                model.unembed.W_U.copy_(model.embed.W_E.T)
        record["embedding_scale"] = float(embedding_scale)
    model.eval()
    record["label"] = variant_label(variant, record)
    record["make_s"] = round(time.perf_counter() - t0, 2)
    return model, record
