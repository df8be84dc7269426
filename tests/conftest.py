"""Shared fixtures: every test writes into temporary build and figures folders, never into the checkout."""

from __future__ import annotations

import os

import pytest

from rsae_utils.params import core as P

# Library code must never reach the network in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def _ample_disk(monkeypatch):
    """Resolving a large profile checks the host's free disk; a test not about that check must not depend on how
    full the test machine is (the long study's 29 GB of caches once made the paper profile refuse). Tests of the
    check set ``budget.free_disk_bytes`` themselves."""
    from rsae_utils.params import budget

    monkeypatch.setattr(budget, "free_disk_bytes", lambda path: 10**13)


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


# A tiny notebook for the runner's tests: records each execution, writes stand-in figures (``figs``), can sleep
# (``sleep``, to be interrupted) or fail (``fail``).
ECHO = """# %% [markdown]
# Test notebook: records each execution.

# %% tags=["parameters"]
PROFILE = "default"
OVERRIDES = {}

# %%
import json, os, pathlib
log = pathlib.Path(os.environ["RSAE_BUILD_DIR"]) / "echo.json"
runs = json.loads(log.read_text()) if log.exists() else []
runs.append({"profile": PROFILE, "overrides": OVERRIDES})
log.write_text(json.dumps(runs))

# %%
import hashlib, time
from rsae_utils.paths import figures_dir
out = figures_dir(PROFILE)
for name in OVERRIDES.get("figs", []):  # stand-ins for save_figure: a file and a manifest naming this notebook
    f = out / f"{name}.txt"
    f.write_text(f"{name} {OVERRIDES.get('n')}")
    files = {"txt": {"name": f.name, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}}
    man = {"figure": name, "notebook": "98_echo", "profile": PROFILE, "files": files}
    (out / f"{name}.manifest.json").write_text(json.dumps(man))
time.sleep(OVERRIDES.get("sleep", 0))

# %%
if OVERRIDES.get("fail"):
    raise RuntimeError("boom on purpose")
"""


@pytest.fixture
def echo_nb(tmp_path, tmp_dirs, monkeypatch):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    (nbdir / "98_echo.py").write_text(ECHO)
    monkeypatch.setenv("RSAE_NOTEBOOKS_DIR", str(nbdir))
    spec = P.Notebook(
        params=[
            P.Param("n", 1, 2, 3, P.is_int(lo=0)),
            P.Param("fail", False, False, False, P.is_bool()),
            P.Param("figs", [], [], [], P.list_of(P.is_str(), min_len=0)),
            P.Param("sleep", 0, 0, 0, P.is_float(0.0)),
        ]
    )
    monkeypatch.setitem(P.NOTEBOOKS, "98_echo", spec)
    build, _ = tmp_dirs
    build.mkdir(parents=True, exist_ok=True)
    return build / "echo.json"
