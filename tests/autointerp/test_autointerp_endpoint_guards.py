"""The HTTP backend never stores or replays an answer it cannot use, fails fast on a stalled server, and replays
cached answers without a server; tested against a small stub server (tests/autointerp_helpers.StubEndpoint)."""

from __future__ import annotations

import time
import warnings

import pytest
from autointerp_helpers import StubEndpoint

from rsae_utils.autointerp.llm.endpoint import OpenAIBackend, ResponseCache
from rsae_utils.autointerp.llm.spec import make_backends
from rsae_utils.errors import BackendError, BackendUnavailable
from rsae_utils.params import resolve

MSGS = [{"role": "user", "content": "Example 1: a\nExample 2: b\nAnswer with a list of 0/1."}]


@pytest.fixture
def stub():
    srv = StubEndpoint()
    yield srv
    srv.stop()


def _client(stub, tmp_path, **kw):
    return OpenAIBackend(stub.base_url, "stub-model", cache_dir=tmp_path / "llm", backoff_s=0.01, **kw)


def _cached(tmp_path):
    return sorted((tmp_path / "llm").glob("??/*.json")) if (tmp_path / "llm").exists() else []


def test_good_answers_are_parsed_and_cached(stub, tmp_path):
    c = _client(stub, tmp_path)
    assert c.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2])
    assert c.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2])
    assert stub.requests == 1 and c.stats["cache_hits"] == 1 and len(_cached(tmp_path)) == 1


def test_no_logprobs_is_refused_at_the_first_request_and_never_cached(stub, tmp_path):
    stub.mode = "no_logprobs"
    c = _client(stub, tmp_path)
    with pytest.raises(BackendError, match=r"no token logprobs.*vLLM.*llama\.cpp.*Ollama.*transformers serve"):
        c.answer_probabilities(MSGS, 2)
    assert stub.requests == 1 and _cached(tmp_path) == []
    # Free text without logprobs is fine (the explainer asks for none) ...
    assert c.generate(MSGS, max_tokens=8) == "Explanation: t1"
    # ... and once the server is fixed, the same request goes out again and succeeds.
    stub.mode = "good"
    assert c.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2])


def test_a_cached_response_that_is_no_completion_is_a_miss(stub, tmp_path):
    c = _client(stub, tmp_path)
    body = {**c.extra_body, **c.answer_body(MSGS, 2)}
    key = ResponseCache.key(f"{c.base_url}/chat/completions", body)
    no_lp = {"choices": [{"message": {"role": "assistant", "content": "[1, 0]"}, "logprobs": None}]}
    for bad in (no_lp, {"choices": []}, {"error": "x"}, {"choices": [{}]}):
        c.cache.put(key, body, bad)
        before = stub.requests
        assert c.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2])
        assert stub.requests == before + 1  # asked the server again, and the good answer replaced the bad one
    assert c.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2]) and stub.requests == 4


@pytest.mark.parametrize("mode, message", [("bad_json", "invalid JSON"), ("not_completion", "no 'choices'")])
def test_http_200_that_is_not_a_completion_is_an_error_not_a_hit(stub, tmp_path, mode, message):
    stub.mode = mode
    c = _client(stub, tmp_path)
    for _ in range(2):  # not cached: the second call asks again
        with pytest.raises(BackendError, match=message):
            c.answer_probabilities(MSGS, 2)
    assert stub.requests == 2 and _cached(tmp_path) == []


def test_a_stalled_endpoint_fails_within_the_timeout(stub, tmp_path):
    stub.mode, stub.stall_s = "stall", 5.0
    c = _client(stub, tmp_path, timeout=0.4, max_retries=1)
    t0 = time.monotonic()
    with (
        pytest.raises(BackendUnavailable, match=r"did not answer within the 0\.4 s timeout, 2 time"),
        pytest.warns(UserWarning, match=r"retrying up to 1 time"),
    ):
        c.answer_probabilities(MSGS, 2)
    assert time.monotonic() - t0 < 4.0 and stub.requests == 2


def test_cached_answers_replay_with_the_server_down(stub, tmp_path):
    c = _client(stub, tmp_path)
    want = c.answer_probabilities(MSGS, 2)
    stub.stop()
    replay = _client(stub, tmp_path)
    with pytest.warns(UserWarning, match="cannot reach.*Replaying cached answers"):
        replay.preflight()  # what run_autointerp calls first: a warning here, not a refusal
    tried = replay.stats["requests"]  # the health check's one attempt
    assert replay.answer_probabilities(MSGS, 2) == want
    assert replay.stats["requests"] == tried and replay.stats["cache_hits"] == 1
    # A request that is not cached still fails, with the health check's message.
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        replay.answer_probabilities(MSGS + [{"role": "user", "content": "more"}], 2)
    # With an empty cache, the preflight refuses at once.
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        OpenAIBackend(stub.base_url, "stub-model", cache_dir=tmp_path / "empty").preflight()


def test_timeout_and_retries_come_from_the_parameters():
    cfg = resolve(
        "04_autointerp",
        "smoke",
        {
            "llm_backends": ["openai"],
            "endpoint_url": "http://127.0.0.1:9/v1",
            "endpoint_model": "m",
            "llm_timeout_s": 7.5,
            "llm_max_retries": 1,
            "llm_layers": None,
        },
    )
    (b,) = make_backends(cfg)
    assert b.timeout == 7.5 and b.max_retries == 1 and b._client.max_retries == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve("04_autointerp", "smoke").max_unparsable_share == 0.5


def test_preflight_checks_logprobs_once_before_the_first_request(stub, tmp_path):
    """A server without logprobs is refused before anything is asked or cached (the explainer, which needs no
    logprobs, would otherwise be answered and cached first); a good one costs one uncached probe."""
    stub.mode = "no_logprobs"
    c = _client(stub, tmp_path)
    with pytest.raises(BackendError, match=r"checked before the run's first request: .*no token logprobs.*vLLM"):
        c.preflight()
    assert stub.requests == 1 and _cached(tmp_path) == []
    stub.mode = "good"
    good = _client(stub, tmp_path)
    good.preflight()
    assert stub.requests == 2 and _cached(tmp_path) == []  # the probe is never replayed from the cache
    assert good.answer_probabilities(MSGS, 2) == pytest.approx([0.8, 0.2]) and stub.requests == 3
