"""Shared fixtures: every test writes into temporary build and figures folders, never into the checkout."""

from __future__ import annotations

import os

import pytest

# Library code must never reach the network in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def tmp_dirs(tmp_path, monkeypatch):
    """Point the build and figures folders at a temporary directory (the notebook kernels inherit it)."""
    build, figs = tmp_path / "build", tmp_path / "figures"
    monkeypatch.setenv("RSAE_BUILD_DIR", str(build))
    monkeypatch.setenv("RSAE_FIGURES_DIR", str(figs))
    return build, figs


@pytest.fixture(scope="session")
def smoke_env(tmp_path_factory):
    """One build/figures folder shared by the whole session, so notebook 04 can read what notebook 03 made."""
    root = tmp_path_factory.mktemp("smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("RSAE_BUILD_DIR", str(root / "build"))
    mp.setenv("RSAE_FIGURES_DIR", str(root / "figures"))
    yield root / "build", root / "figures"
    mp.undo()


@pytest.fixture(scope="session")
def smoke_run(smoke_env):
    """``smoke_run("03")`` executes a notebook under the smoke profile in the shared session folders.

    A notebook already run with the same parameters is not rerun (the runner's own up-to-date check), so tests of
    notebooks 04 and 05 can ask for 03 first without paying twice.
    """
    from rsae_utils.nbrun import run_notebook

    def run(name: str, overrides: dict | None = None, force: bool = False):
        return run_notebook(name, "smoke", overrides or {}, force=force, progress=False)

    return run
