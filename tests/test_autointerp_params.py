"""Parameters of notebooks 04 and 05: the three profiles resolve, bad input fails before any work."""

import pytest

from rsae_utils.params import PROFILES, ParameterError, resolve


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_resolve(profile):
    cfg = resolve("04_autointerp", profile)
    assert cfg.window_len == 32 and cfg.batch_size == 5
    resolve("05_roc_entropy", profile)


def test_paper_profile_has_paper_counts():
    cfg = resolve("04_autointerp", "paper")
    assert (cfg.n_latents, cfg.n_explain, cfg.n_bins, cfg.per_bin, cfg.n_negatives) == (100, 40, 10, 10, 100)
    assert cfg.llm_backends == ["openai"] and cfg.endpoint_url.startswith("http")
    assert resolve("05_roc_entropy", "paper").n_boot == 100


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"llm_backends": ["openai"], "endpoint_url": "localhost:8000", "endpoint_model": "m"}, "endpoint_url"),
        ({"llm_backends": ["openai"], "endpoint_url": "http://127.0.0.1:8000/v1"}, "endpoint_model"),
        ({"llm_backends": ["gpt"]}, "llm_backends"),
        ({"explain_pool": 4, "n_explain": 8}, "explain_pool"),
        ({"min_examples": 5}, "min_examples"),
        ({"n_latents": 0}, "n_latents"),
        ({"mark_frac": 1.5}, "mark_frac"),
        ({"scorers": ["simulation"]}, "scorers"),
        ({"llm_variants": ["trianed"]}, "llm_variants"),
    ],
)
def test_bad_parameters_fail_early(overrides, needle):
    with pytest.raises(ParameterError, match=needle):
        resolve("04_autointerp", "default", overrides)


def test_openai_endpoint_accepted():
    cfg = resolve(
        "04_autointerp",
        "default",
        {"llm_backends": ["openai"], "endpoint_url": "http://10.0.0.5:11434/v1", "endpoint_model": "llama3.1:70b"},
    )
    assert cfg.endpoint_model == "llama3.1:70b"
