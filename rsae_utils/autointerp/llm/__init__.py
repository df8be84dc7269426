"""LLM backends for the explainer and scorers, behind one protocol (:class:`LLMBackend`).

* ``base``     the protocol, the answer-list format and its log-prob parsing (pure functions);
* ``endpoint`` an OpenAI-compatible endpoint (the ``openai`` package as transport) with a response cache;
* ``local``    SmolLM2-135M-Instruct (offline) with constrained answer decoding;
* ``spec``     backend spec strings (``'local'``, ``'openai:<url>:<model>'``) -> backends;
* ``serve``    the local model behind an OpenAI-compatible HTTP server (logprobs included).
"""

from rsae_utils.autointerp.llm.base import LLMBackend, Messages
from rsae_utils.autointerp.llm.endpoint import OpenAIBackend
from rsae_utils.autointerp.llm.local import LocalChatBackend
from rsae_utils.autointerp.llm.spec import make_backend, make_backends, parse_backend_spec

__all__ = [
    "LLMBackend",
    "Messages",
    "OpenAIBackend",
    "LocalChatBackend",
    "make_backend",
    "make_backends",
    "parse_backend_spec",
]
