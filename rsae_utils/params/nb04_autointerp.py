"""Parameters of notebook 04_autointerp; the sampling and scoring block it shares with notebook 08 is declared in
``params/sampling.py``."""

from __future__ import annotations

import re

from rsae_utils import paths
from rsae_utils.errors import ArtifactError, ParameterError
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
)
from rsae_utils.params.sampling import check_sampling, sampling_params
from rsae_utils.store import load_table
from rsae_utils.subject.variants import VARIANTS

_AI_BACKENDS = ("local", "openai")
_URL_RE = r"^https?://[A-Za-z0-9.\-_\[\]]+(:\d{1,5})?(/[^\s]*)?$"


def _check_llm_layers(cfg: Config) -> None:
    """LLM layers that notebook 03 trained no SAE for fail here, listing the trained ones (when its index exists)."""
    if not cfg.llm_backends or cfg.llm_layers is None:
        return
    index = paths.existing_sae_index(cfg.profile)
    if index is None:
        return  # notebook 03 has not run: the runner orders it first, and the notebook says so
    try:
        runs = load_table(index, rerun=paths.rerun_03(cfg.profile))
    except ArtifactError as err:
        raise ParameterError(f"cannot check parameter 'llm_layers': {err}") from None
    chosen = runs[runs["variant"].isin(cfg.llm_variants)] if "variant" in runs else runs
    trained = sorted({int(x) for x in chosen.get("layer", [])})
    missing = [x for x in cfg.llm_layers if x not in trained]
    if missing:
        raise ParameterError(
            f"parameter 'llm_layers' names layer(s) {missing} that notebook 03 trained no SAE for (variants "
            f"{list(cfg.llm_variants)}); trained layers: {trained} (from {index})"
        )


def _check_04(cfg: Config) -> None:
    check_sampling(cfg)
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
    _check_llm_layers(cfg)


register(
    "04_autointerp",
    Notebook(
        title="Auto-interpretability: explanations, detection and fuzzing scores, token-identity baseline",
        params=[
            Param(
                "split",
                "test",
                "test",
                "test",
                one_of(["test", "train"]),
                "cache split the examples come from ('test': held out from SAE training; 'train' exists only when "
                "notebook 03 ran with train_from='cache')",
            ),
            Param("max_contexts", None, None, None, optional(is_int(1)), "cap on cached contexts read per SAE"),
            *sampling_params(),
            Param("batch_size", 5, 5, 5, is_int(1, 50), "windows per scorer prompt (the paper: 5)"),
            Param(
                "scorers",
                ["detection", "fuzzing"],
                ["detection", "fuzzing"],
                ["detection", "fuzzing"],
                list_of(one_of(["detection", "fuzzing"]), unique=True),
                "scorers to run",
            ),
            Param(
                "llm_backends",
                ["local"],
                ["local"],
                ["openai"],
                list_of(one_of(_AI_BACKENDS), min_len=0, unique=True),
                "LLM explainer/scorers besides the token baseline: 'local' (SmolLM2-135M-Instruct, offline), "
                "'openai' (an OpenAI-compatible endpoint: endpoint_url + endpoint_model)",
            ),
            Param(
                "endpoint_url",
                None,
                None,
                "http://127.0.0.1:8000/v1",
                optional(is_str()),
                "base URL of the OpenAI-compatible server (vLLM, Ollama, llama.cpp server, hosted API)",
            ),
            Param(
                "endpoint_model",
                None,
                None,
                "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
                optional(is_str()),
                "model name the endpoint serves (the paper: Llama-3.1-70B-Instruct, AWQ int4, on vLLM)",
            ),
            Param(
                "endpoint_structured",
                None,
                None,
                None,
                optional(one_of(["guided_regex", "structured_outputs"])),
                "constrain the endpoint's answer lists by a regex: 'guided_regex' (vLLM <= 0.10, and the project's own "
                "server `python -m rsae_utils.autointerp.llm.serve`), 'structured_outputs' (newer vLLM); None: free "
                "text (a 70B instruction model answers in the format unaided)",
            ),
            Param(
                "llm_timeout_s",
                120.0,
                120.0,
                600.0,
                is_float(0.1, 3600.0),
                "seconds the endpoint may take for one request before it counts as failed (a stalled server then "
                "stops the run with BackendUnavailable instead of hanging)",
            ),
            Param(
                "llm_max_retries",
                2,
                2,
                4,
                is_int(0, 20),
                "retries of a request that timed out, could not connect, or got HTTP 429/5xx (with back-off)",
            ),
            Param(
                "max_unparsable_share",
                0.5,
                0.5,
                0.5,
                is_float(0.0, 1.0),
                "the run fails (non-zero exit) when more than this share of an LLM backend's answers could not be "
                "parsed: its scores would be void (a server without logprobs, a model that ignores the format)",
            ),
            Param("explainer_max_tokens", 24, 32, 100, is_int(1, 1000), "token budget of an explanation"),
            Param(
                "llm_n_latents",
                1,
                1,
                100,
                is_int(0),
                "latents per SAE the LLM explains and scores (default 1: the offline SmolLM2-135M-Instruct scores at "
                "chance and costs ~50 s a latent on 2 cores; the paper: 100)",
            ),
            Param(
                "llm_variants",
                ["trained"],
                ["trained", "rerandomized_incl_emb"],
                list(VARIANTS),
                list_of(one_of(VARIANTS), unique=True),
                "variants whose SAEs the LLM scores",
            ),
            Param(
                "llm_layers",
                [0],
                [9],
                None,
                optional(list_of(is_int(0), unique=True)),
                "layers whose SAEs the LLM scores (None: every layer)",
                gpu=[8],
            ),
            Param("seed", 0, 0, 0, is_int(0), "seed of latent and example sampling, batch order and fuzzing marks"),
            Param(
                "device",
                "cpu",
                "cpu",
                "cuda",
                one_of(["cpu", "cuda", "mps"]),
                "torch device the SAEs encode on",
                gpu="cuda",
            ),
        ],
        checks=[_check_04],
        after=["03_sae_training"],
    ),
)
