"""The one profile system: resolution, overrides, and clear errors before any work."""

from __future__ import annotations

import pytest

from rsae_utils.params import ParameterError, resolve
from rsae_utils.params import core as P

VARIANT = P.one_of(["trained", "control"])


@pytest.fixture
def demo(monkeypatch):
    def k_below_latents(cfg):
        if cfg.k >= cfg.n_latents:
            raise ParameterError(f"parameter 'k' must be < n_latents ({cfg.n_latents}); got {cfg.k}")

    spec = P.Notebook(
        params=[
            P.Param("n_latents", 8, 64, 512, P.is_int(lo=1)),
            P.Param("k", 2, 8, 32, P.is_int(lo=1)),
            P.Param("lr", 1e-3, 1e-3, 2e-4, P.is_float(lo=0.0)),
            P.Param("variants", ["trained"], ["trained", "control"], ["trained"], P.list_of(VARIANT)),
        ],
        checks=[k_below_latents],
    )
    monkeypatch.setitem(P.NOTEBOOKS, "99_demo", spec)
    return "99_demo"


def test_profiles_give_their_values_and_overrides_win(demo):
    assert resolve(demo, "smoke").n_latents == 8
    assert resolve(demo, "paper").k == 32
    cfg = resolve(demo, "default", {"k": 4})
    assert (cfg.k, cfg.n_latents) == (4, 64)
    assert cfg.overridden == ("k",)
    assert dict(cfg) == {"n_latents": 64, "k": 4, "lr": 1e-3, "variants": ["trained", "control"]}


def test_config_is_read_only(demo):
    cfg = resolve(demo)
    with pytest.raises(AttributeError):
        cfg.k = 3


def test_unknown_parameter_names_the_allowed_ones_and_suggests(demo):
    msg = r"unknown parameter 'n_latent'.*did you mean 'n_latents'.*allowed: n_latents, k"
    with pytest.raises(ParameterError, match=msg):
        resolve(demo, "default", {"n_latent": 3})


def test_bad_values_name_parameter_and_allowed_values(demo):
    with pytest.raises(ParameterError, match=r"'k' must be an integer >= 1; got 0"):
        resolve(demo, "default", {"k": 0})
    with pytest.raises(ParameterError, match=r"'k' must be an integer >= 1; got 2.5"):
        resolve(demo, "default", {"k": 2.5})
    with pytest.raises(ParameterError, match=r"'variants\[1\]' must be one of 'trained', 'control'; got 'random'"):
        resolve(demo, "default", {"variants": ["trained", "random"]})
    with pytest.raises(ParameterError, match=r"'lr' must be a number >= 0.0; got nan"):
        resolve(demo, "default", {"lr": float("nan")})


def test_cross_parameter_check(demo):
    with pytest.raises(ParameterError, match=r"'k' must be < n_latents \(64\); got 64"):
        resolve(demo, "default", {"k": 64})


def test_unknown_profile_and_notebook(demo):
    allowed = "'smoke', 'default', 'paper', 'gpu', 'long'"
    with pytest.raises(ParameterError, match=rf"'PROFILE' must be one of {allowed}; got 'fa"):
        resolve(demo, "fast")
    with pytest.raises(ParameterError, match="unknown notebook"):
        resolve("77_nothing", "default")


def test_parse_override_reads_literals_and_strings():
    assert P.parse_override("k=32") == ("k", 32)
    assert P.parse_override("layers=[0, 4]") == ("layers", [0, 4])
    assert P.parse_override("model=pythia-70m") == ("model", "pythia-70m")
    with pytest.raises(ParameterError, match="must look like NAME=VALUE"):
        P.parse_override("k32")


@pytest.mark.parametrize("profile", P.PROFILES)
def test_every_registered_notebook_resolves_in_every_profile(profile):
    """The shipped profiles themselves pass their own checks (a typo in a profile fails here, not at run time)."""
    for name in P.NOTEBOOKS:
        cfg = resolve(name, profile)
        assert cfg.profile == profile and len(cfg) == len(P.NOTEBOOKS[name].params)


def test_every_notebook_file_has_a_profile_block_and_parameters_cell():
    from rsae_utils.nbrun import available_notebooks

    for name, path in available_notebooks().items():
        assert name in P.NOTEBOOKS, f"{name} has no parameters in rsae_utils/params/"
        text = path.read_text()
        assert '# %% tags=["parameters"]' in text, f"{name} lacks a papermill parameters cell"
        own = (f'resolve("{name}", PROFILE, OVERRIDES)', f'start_session("{name}", PROFILE, OVERRIDES)')
        assert any(call in text for call in own), f"{name} does not resolve its own config"


def test_a_shared_parameter_is_the_earlier_notebooks_with_the_changes():
    from rsae_utils.params.core import NOTEBOOKS, shared_param

    nb03 = {p.name: p for p in NOTEBOOKS["03_sae_training"].params}["cache_dtype"]
    got = shared_param("03_sae_training", "cache_dtype", long="float16")
    assert [got.value(pr) for pr in ("smoke", "default", "paper", "gpu")] == [
        nb03.value(pr) for pr in ("smoke", "default", "paper", "gpu")
    ]
    assert got.value("long") == "float16" != nb03.value("long")
    with pytest.raises(ParameterError, match="no parameter 'cache_dtyp'"):
        shared_param("03_sae_training", "cache_dtyp")
