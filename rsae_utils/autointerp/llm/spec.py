"""Backend spec strings: one string names an LLM backend in parameters, tables and figures.

``'local'`` (offline SmolLM2-135M-Instruct), ``'local:<path>'`` (a ``.gguf`` file or transformers folder),
``'openai:<base_url>:<model>'`` (an OpenAI-compatible endpoint). Parsing checks the form only: nothing loads and
nothing connects until the backend is used. Every backend is built by :func:`make_backend`; notebook 04's
parameters name theirs through :func:`make_backends`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsae_utils.autointerp.llm.base import LLMBackend, bad_param
from rsae_utils.autointerp.llm.endpoint import OpenAIBackend
from rsae_utils.autointerp.llm.local import LOCAL_MODEL_NAME, LocalChatBackend

# The URL is scheme://host[:port][/path]; the model is what follows the next ":" and may contain ":" itself. The
# look-ahead stops a port ("h:8000/v1") from being read as a model name.
_OPENAI_SPEC = re.compile(r"^openai:(https?://[^/\s:]+(?::\d+)?(?:/[^:\s]*)?):(?!\d+(?:/|$))(\S+)$")

BACKEND_SPEC_HELP = (
    "'local' (offline SmolLM2-135M-Instruct), 'local:<path to .gguf or model folder>', "
    "'openai:<base_url>:<model>' (e.g. 'openai:http://127.0.0.1:8000/v1:llama3.1:70b'), "
    "or 'openai' with base_url= and model= keywords"
)


def parse_backend_spec(spec: Any, name: str = "backend") -> tuple[str, dict[str, str]]:
    """``("local", {"model": path or ""})`` or ``("openai", {"base_url": ..., "model": ...})``; no loading, no network.

    ``"openai"`` alone parses to empty base_url/model (they must come as keywords to :func:`make_backend`).
    Raises :class:`~rsae_utils.errors.ParameterError` naming ``name`` and the allowed forms.
    """
    if not isinstance(spec, str):
        bad_param(name, BACKEND_SPEC_HELP, spec)
    if spec in ("local", f"local:{LOCAL_MODEL_NAME}"):
        return "local", {"model": ""}
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        if not Path(path).exists():
            bad_param(name, f"{BACKEND_SPEC_HELP}; {path!r} does not exist", spec)
        return "local", {"model": path}
    if spec == "openai":
        return "openai", {"base_url": "", "model": ""}
    m = _OPENAI_SPEC.match(spec)
    if not m:
        bad_param(name, BACKEND_SPEC_HELP, spec)
    return "openai", {"base_url": m.group(1), "model": m.group(2)}


def check_backend_spec(name: str, value: Any) -> None:
    """A :mod:`rsae_utils.params` checker for a backend spec string (validates the form; loads nothing)."""
    parse_backend_spec(value, name)


check_backend_spec.allowed = BACKEND_SPEC_HELP  # type: ignore[attr-defined]


def make_backend(spec: str, **kw: Any) -> LLMBackend:
    """A backend from a spec string (validated before anything loads or connects; the local model loads lazily).

    * ``"local"`` or ``"local:SmolLM2-135M-Instruct"`` -> :class:`LocalChatBackend` on the wheel's model;
      ``"local:<path>"`` -> a ``.gguf`` file or transformers folder. Keywords go to :class:`LocalChatBackend`.
    * ``"openai:<base_url>:<model>"`` -> :class:`OpenAIBackend`. The URL is ``scheme://host[:port][/path]`` and
      the model is everything after the next ``:`` (so it may contain ``:``, as Ollama's names do); alternatively
      ``make_backend("openai", base_url=..., model=...)``. Other keywords go to :class:`OpenAIBackend`.
    The backend's ``name`` is a spec that makes the same backend again. Bad specs raise
    :class:`~rsae_utils.errors.ParameterError`.
    """
    kind, args = parse_backend_spec(spec)
    if kind == "local":
        return LocalChatBackend(args["model"] or None, **kw)
    base_url, model = kw.pop("base_url", None) or args["base_url"], kw.pop("model", None) or args["model"]
    if not base_url or not model:
        bad_param("backend", f"{BACKEND_SPEC_HELP} ('openai' alone needs base_url= and model=)", spec)
    return OpenAIBackend(base_url, model, **kw)


def endpoint_keywords(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`make_backend`'s keywords for ``'openai'`` from notebook 04's parameters: ``endpoint_url`` and
    ``endpoint_model`` required; timeout, retries and structured decoding optional (a partial config in tests)."""
    return {
        "base_url": cfg["endpoint_url"],
        "model": cfg["endpoint_model"],
        "timeout": float(cfg.get("llm_timeout_s", 120.0)),
        "max_retries": int(cfg.get("llm_max_retries", 4)),
        "structured": cfg.get("endpoint_structured"),
    }


def make_backends(cfg: Mapping[str, Any]) -> list[LLMBackend]:
    """The LLM backends ``cfg["llm_backends"]`` names ('local', 'openai'), each through :func:`make_backend`;
    validated, nothing loaded yet."""
    return [
        make_backend(spec, **(endpoint_keywords(cfg) if spec == "openai" else {}))
        for spec in cfg.get("llm_backends", [])
    ]
