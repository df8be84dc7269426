"""The papermill runner behind `make figures`: parameters reach the kernel, up-to-date notebooks are skipped,
failures keep the partial notebook, and bad input stops before any kernel starts."""

from __future__ import annotations

import json

import pytest

from rsae_utils import nbrun, outputs
from rsae_utils.params import core as P


def _runs(log):
    return json.loads(log.read_text()) if log.exists() else []


@pytest.mark.slow
def test_runner_passes_parameters_and_skips_up_to_date(echo_nb):
    out = nbrun.run_notebook("98", "smoke", {"n": 5}, progress=False)
    assert out.name == "98_echo.ipynb" and out.exists()
    assert _runs(echo_nb) == [{"profile": "smoke", "overrides": {"n": 5}}]
    nbrun.run_notebook("98", "smoke", {"n": 5}, progress=False)
    assert len(_runs(echo_nb)) == 1, "an unchanged notebook must not rerun"
    nbrun.run_notebook("98", "smoke", {"n": 6}, progress=False)
    assert len(_runs(echo_nb)) == 2, "a changed parameter must rerun"
    nbrun.run_notebook("98", "smoke", {"n": 6}, force=True, progress=False)
    assert len(_runs(echo_nb)) == 3


@pytest.mark.slow
def test_runner_reruns_when_source_changes(echo_nb, tmp_path):
    nbrun.run_notebook("98", "smoke", progress=False)
    path = nbrun.available_notebooks()["98_echo"]
    path.write_text(path.read_text() + "\n# %%\nx = 1\n")
    nbrun.run_notebook("98", "smoke", progress=False)
    assert len(_runs(echo_nb)) == 2


@pytest.mark.slow
def test_failing_notebook_raises_with_cell_and_keeps_partial_output(echo_nb):
    with pytest.raises(nbrun.NotebookFailed, match="boom on purpose") as info:
        nbrun.run_notebook("98", "smoke", {"fail": True}, progress=False)
    assert "RuntimeError" in str(info.value)
    executed = json.loads(info.value.executed.read_text())
    assert any("boom on purpose" in json.dumps(c.get("outputs", [])) for c in executed["cells"])
    assert not nbrun.is_up_to_date("98_echo", "smoke", {"fail": True})


def test_bad_parameter_fails_before_a_kernel_starts(echo_nb, capsys):
    with pytest.raises(P.ParameterError, match="'n' must be an integer >= 0; got -1"):
        nbrun.run_notebook("98", "smoke", {"n": -1}, progress=False)
    assert nbrun.main(["--profile", "smoke", "--nb", "98", "--set", "m=1"]) == 2
    assert "none of the selected notebooks (98_echo) has it" in capsys.readouterr().err
    assert nbrun.main(["--profile", "fast", "--nb", "98"]) == 2
    assert nbrun.main(["--nb", "97"]) == 2
    assert not echo_nb.exists(), "no kernel may run when the input is bad"


def test_select_notebooks_accepts_numbers_names_and_lists(echo_nb, tmp_path):
    echo = nbrun.available_notebooks()["98_echo"]
    (echo.parent / "97_other.py").write_text(echo.read_text())
    assert nbrun.select_notebooks("all") == ["97_other", "98_echo"]
    assert nbrun.select_notebooks("98,97") == ["97_other", "98_echo"]
    assert nbrun.select_notebooks("98_echo") == ["98_echo"]
    with pytest.raises(P.ParameterError, match="'NB' has unknown notebook '5'"):
        nbrun.select_notebooks("5")


@pytest.mark.slow
def test_readers_copy_is_rewritten_by_every_default_run(echo_nb):
    """A rerun (the code or an input changed, the source did not) may change outputs: the readers' copy follows it;
    a notebook that was up to date and not rerun leaves the copy alone."""
    nbrun.run_notebook("98", "default", progress=False)
    copy = outputs.executed_copies_dir() / "98_echo.ipynb"
    nb = json.loads(copy.read_text())
    nb["metadata"]["marker"] = "made by an earlier run"  # the source hash still matches
    copy.write_text(json.dumps(nb))
    nbrun.run_notebook("98", "default", progress=False)  # up to date: not rerun, copy kept
    assert json.loads(copy.read_text())["metadata"]["marker"] == "made by an earlier run"
    nbrun.run_notebook("98", "default", force=True, progress=False)
    assert "marker" not in json.loads(copy.read_text())["metadata"] and len(_runs(echo_nb)) == 2
