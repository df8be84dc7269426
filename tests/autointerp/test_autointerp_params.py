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


def test_notebooks_04_and_08_share_one_sampling_block():
    """The sampling and scoring parameters are declared once (params/sampling.py); notebook 08 changes only its
    sizes (and two lower bounds), every profile's values as before the block was shared."""
    from rsae_utils.params import NOTEBOOKS
    from rsae_utils.params.sampling import SAMPLING_NAMES, sampling_params

    specs = {nb: {p.name: p for p in NOTEBOOKS[nb].params} for nb in ("04_autointerp", "08_critique")}
    for name in SAMPLING_NAMES:
        a, b = specs["04_autointerp"][name], specs["08_critique"][name]
        assert (a.smoke, a.default, a.paper) == (b.smoke, b.default, b.paper) or name in {
            "n_latents",
            "min_examples",
            "n_bins",
            "per_bin",
            "n_negatives",
        }, name
    sizes = {
        "04_autointerp": {"n_latents": (8, 100, 100, 100), "n_bins": (2, 10, 10, 10), "n_negatives": (3, 50, 100, 50)},
        "08_critique": {"n_latents": (6, 60, 100, 60), "n_bins": (2, 5, 10, 5), "n_negatives": (3, 20, 100, 20)},
    }
    for nb, want in sizes.items():
        for name, values in want.items():
            got = tuple(resolve(nb, prof)[name] for prof in ("smoke", "default", "paper", "gpu"))
            assert got == values, (nb, name, got)
    with pytest.raises(ParameterError, match="n_latents"):
        resolve("08_critique", "smoke", {"n_latents": 1})  # notebook 08's own bound: an intruder needs two
    assert resolve("04_autointerp", "smoke", {"n_latents": 1}).n_latents == 1
    for nb in ("04_autointerp", "08_critique"):
        with pytest.raises(ParameterError, match="explain_pool"):
            resolve(nb, "smoke", {"explain_pool": 1})  # the block's cross check, in both
    with pytest.raises(ValueError, match="not shared"):
        sampling_params({"batch_size": {"default": 3}})
