"""What readers open: the executed copies of the default run (in step with the .py sources), the set-up cell that
makes a notebook run on Colab or Binder, and the README's links to them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import pytest

from rsae_utils import nbrun, outputs
from rsae_utils.claims import readme_block

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
tomllib = pytest.importorskip("tomllib")
_FIND_SPEC = importlib.util.find_spec


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _setup_cells() -> dict[str, str]:
    cells = {}
    for path in NOTEBOOKS:
        nb = jupytext.read(path)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[1].metadata.get("tags", []), f"{path.name}: set-up cell, then parameters"
        cells[path.name] = code[0].source
    return cells


# --------------------------------------------------------------------------------------------------------------
# Executed copies
# --------------------------------------------------------------------------------------------------------------
def test_executed_copies_match_their_sources():
    """A copy made from an older .py is stale: rerun the notebook with the default profile (make figures NB=NN)."""
    assert outputs.executed_copy_drift(ROOT / "notebooks") == []


def test_drift_of_a_copy_is_detected(tmp_path):
    src = tmp_path / "07_demo.py"
    src.write_text("# %%\nx = 1\n")
    executed = tmp_path / "run.ipynb"
    executed.write_text(
        json.dumps(
            {
                "cells": [],
                "metadata": {"papermill": {"input_path": "/home/me/x.ipynb"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    copy = outputs.write_executed_copy(executed, src, tmp_path / "executed" / "07_demo.ipynb")
    meta = json.loads(copy.read_text())["metadata"]
    assert meta["rsae"]["source_sha256"] == outputs.source_sha256(src) and "input_path" not in meta["papermill"]
    assert outputs.executed_copy_drift(tmp_path) == []
    src.write_text("# %%\nx = 2\n")
    assert "made from another version of 07_demo.py" in outputs.executed_copy_drift(tmp_path)[0]
    (tmp_path / "executed" / "08_gone.ipynb").write_text(json.dumps({"metadata": {}}))
    (tmp_path / "executed" / "07_demo.ipynb").write_text(json.dumps({"metadata": {}}))
    problems = " ".join(outputs.executed_copy_drift(tmp_path))
    assert "no notebook 08_gone.py" in problems and "not written by the runner" in problems


@pytest.mark.slow
def test_default_run_writes_the_readers_copy(echo_nb):
    copy = nbrun.notebooks_dir() / "executed" / "98_echo.ipynb"
    source = nbrun.available_notebooks()["98_echo"]
    nbrun.run_notebook("98", "smoke", progress=False)
    assert not copy.exists(), "only the default profile makes readers' copies"
    nbrun.run_notebook("98", "default", {"n": 7}, progress=False)
    assert not copy.exists(), "nor a run with overrides"
    nbrun.run_notebook("98", "default", progress=False)
    nb = json.loads(copy.read_text())
    assert nb["metadata"]["rsae"]["source_sha256"] == outputs.source_sha256(source)
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert outputs.executed_copy_drift(nbrun.notebooks_dir()) == []
    copy.unlink()
    n_runs = len(json.loads(echo_nb.read_text()))
    nbrun.run_notebook("98", "default", progress=False)  # up to date: the copy comes back without a kernel
    assert copy.exists() and len(json.loads(echo_nb.read_text())) == n_runs
    source.write_text(source.read_text() + "\n# %%\ny = 1\n")
    assert outputs.executed_copy_drift(nbrun.notebooks_dir()), "an edited source makes its copy stale"


# --------------------------------------------------------------------------------------------------------------
# The set-up cell
# --------------------------------------------------------------------------------------------------------------
def test_setup_cell_is_the_first_code_cell_and_the_same_everywhere():
    cells = _setup_cells()
    assert len(NOTEBOOKS) >= 5 and len(set(cells.values())) == 1, "keep the set-up cell identical in every notebook"
    assert len(next(iter(cells.values())).splitlines()) <= 25, "keep it tiny"


def _exec_cell(monkeypatch, on_colab: bool, installed: bool) -> tuple[dict, list]:
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
        monkeypatch.delenv("BINDER_LAUNCH_HOST", raising=False)
    real = _FIND_SPEC

    def find_spec(name, *a):
        return None if name == "rsae_utils" and not installed else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    ns: dict = {}
    exec(next(iter(_setup_cells().values())), ns)
    return ns, calls


def test_setup_cell_does_nothing_off_colab_or_when_installed(monkeypatch):
    assert _exec_cell(monkeypatch, on_colab=False, installed=False)[1] == []
    assert _exec_cell(monkeypatch, on_colab=True, installed=True)[1] == []


def test_setup_cell_installs_on_colab_with_well_formed_commands(monkeypatch):
    ns, calls = _exec_cell(monkeypatch, on_colab=True, installed=False)
    cmds = ns["install_commands"]()
    assert calls == cmds and len(cmds) == 2
    for cmd in cmds:
        assert all(isinstance(a, str) and a for a in cmd)
        assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    project = _pyproject()["project"]
    url = project["urls"]["Repository"]
    assert ns["REPO_URL"] == url and re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    assert cmds[0][-1] == f"{project['name']} @ git+{url}"
    nodeps = {
        ln.strip()
        for ln in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert "--no-deps" in cmds[1] and set(cmds[1][cmds[1].index("--no-deps") + 1 :]) <= nodeps


def test_readme_links_open_the_executed_copies_of_this_repository():
    url = _pyproject()["project"]["urls"]["Repository"]
    owner_repo = url.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    colab = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", readme)
    assert colab, "the README should open the notebooks in Colab"
    stems = {p.stem for p in NOTEBOOKS}
    for link in colab:
        m = re.fullmatch(rf"{re.escape(owner_repo)}/blob/main/notebooks/executed/(\w+)\.ipynb", link)
        assert m and m.group(1) in stems, f"Colab link {link} must open notebooks/executed/<notebook>.ipynb"
    assert f"mybinder.org/v2/gh/{owner_repo}/" in readme


def test_readme_shows_the_committed_claims_table():
    """The README's claims table is notebook 10's ``figures/claims.md`` of the committed default run, links and all."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- claims.md -->") == 1 and readme.count("<!-- /claims.md -->") == 1
    shown = readme.split("<!-- claims.md -->")[1].split("<!-- /claims.md -->")[0].strip() + "\n"
    assert shown == readme_block((ROOT / "figures" / "claims.md").read_text())
    for link in re.findall(r"\]\((figures/[^)]+)\) \|$", shown, flags=re.M):
        assert (ROOT / link).exists(), link


def test_committed_copies_name_no_machine_paths():
    """Readers' copies hold repo-relative paths only: no stderr stream naming site-packages, no checkout prefix."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": "/opt/venv/site-packages/tqdm/auto.py: warning",
                    },
                    {"output_type": "stream", "name": "stdout", "text": "png /home/u/repo/figures/a.png"},
                ],
            }
        ]
    }
    text = outputs.portable_copy(nb, Path("/home/u/repo"))
    assert "/home/u" not in text and "site-packages" not in text and "png figures/a.png" in text
    for copy in (ROOT / "notebooks" / "executed").glob("*.ipynb"):
        assert not re.search(r'"(/work|/home|/tmp|/root)/', copy.read_text()), copy
