"""What the runner guards against: SET and NB mangled on their way from make, outputs deleted behind its back,
figures left from an earlier run, Ctrl-C (kernel killed, one line, exit 130), SIGKILL leftovers, read-only output
folders, and misspelt names."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsae_utils import nbrun, runguard
from rsae_utils.errors import ParameterError, SetupError
from rsae_utils.params import parse_overrides, resolve
from rsae_utils.params.core import split_overrides
from rsae_utils.store import cached_artifact, file_sha256

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _runs(log):
    return json.loads(log.read_text()) if log.exists() else []


# --------------------------------------------------------------------------------------------------------------
# SET and NB: one string each, values untouched
# --------------------------------------------------------------------------------------------------------------
def test_set_string_splits_outside_quotes_and_brackets():
    got = parse_overrides("variants=['trained'] seeds=[0, 1]  corpus='dir:/a b' model=pythia-160m note=\"x y\"")
    assert got == {
        "variants": ["trained"],
        "seeds": [0, 1],
        "corpus": "dir:/a b",
        "model": "pythia-160m",
        "note": "x y",
    }
    assert split_overrides("a={'k': [1, 2]} b=(3, 4)") == ["a={'k': [1, 2]}", "b=(3, 4)"]
    assert parse_overrides("") == {} and parse_overrides(["steps=5"]) == {"steps": 5}
    with pytest.raises(ParameterError, match=r"strings inside a list need quotes"):
        parse_overrides("variants=[trained]")
    with pytest.raises(ParameterError, match="given twice"):
        parse_overrides("steps=1 steps=2")
    with pytest.raises(ParameterError, match="must look like NAME=VALUE"):
        parse_overrides("steps=1 2")
    with pytest.raises(ParameterError, match="unclosed"):
        parse_overrides("corpus='dir:/x")
    # an unclosed bracket is said as such, not as a missing quote
    for text in ("seeds=[0, 1", "variants=['trained'", "x={'a': [1, 2]"):
        with pytest.raises(ParameterError, match=r"the '[\[{]' bracket is never closed") as info:
            parse_overrides(text)
        assert "need quotes" not in str(info.value)
    with pytest.raises(ParameterError, match="strings inside a list need quotes"):
        parse_overrides(["variants=[trained]"])


def test_make_passes_set_and_nb_untouched(tmp_path):
    """The Makefile's own recipe, with a stand-in python that reports the arguments it was given."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    argv_log = tmp_path / "argv.json"
    fake = venv / "bin" / "python"
    dump = f"import json, sys; json.dump(sys.argv[1:], open('{argv_log}', 'w'))"
    fake.write_text(f'#!/bin/sh\nexec {PY} -c "{dump}" "$@"\n')
    fake.chmod(0o755)
    (venv / ".rsae-env-done").touch()  # newer than the requirements: make does not build an environment
    set_value = "variants=['trained'] seeds=[0, 1] corpus='dir:corpora/a b' x=$HOME"
    res = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "figures", f"VENV={venv}", "NB=01 02", "PROFILE=smoke", f"SET={set_value}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    args = nbrun.build_parser().parse_args(json.loads(argv_log.read_text())[2:])  # after "-m rsae_utils"
    assert args.profile == "smoke" and args.set_string == set_value and not args.force
    assert nbrun.select_notebooks(args.nb) == ["01_toy_superposition", "02_mmcs_goldilocks"]
    assert parse_overrides(args.set_string) == {
        "variants": ["trained"],
        "seeds": [0, 1],
        "corpus": "dir:corpora/a b",
        "x": "$HOME",
    }
    assert resolve("03_sae_training", "smoke", {"variants": ["trained"]}).variants == ["trained"]


def test_nb_accepts_spaces_commas_and_quotes():
    assert nbrun.select_notebooks("01 02") == nbrun.select_notebooks("01,02") == nbrun.select_notebooks(" 2, 1 ")
    assert nbrun.select_notebooks("'01'") == ["01_toy_superposition"]


# --------------------------------------------------------------------------------------------------------------
# Did you mean
# --------------------------------------------------------------------------------------------------------------
def test_misspelt_names_get_a_suggestion(capsys):
    with pytest.raises(ParameterError, match="did you mean 'n_samples'"):
        resolve("01_toy_superposition", "smoke", {"n_sampels": 5})
    with pytest.raises(ParameterError, match="did you mean 'smoke'"):
        resolve("01_toy_superposition", "smok")
    with pytest.raises(ParameterError, match="did you mean 'trained'"):
        resolve("03_sae_training", "smoke", {"variants": ["trainde"]})
    with pytest.raises(ParameterError, match="did you mean '05_roc_entropy'"):
        nbrun.select_notebooks("05_roc_entropi")
    assert nbrun.main(["--profile", "smoke", "--nb", "01", "--set-string", "n_sampels=5"]) == 2
    assert "did you mean 'n_samples'" in capsys.readouterr().err
    assert nbrun.main(["--profile", "smoke", "--nb", "01", "--set-string", "n_boot=5"]) == 2
    assert "belongs to 05_roc_entropy, 08_critique, 10_claims, none of which is selected" in capsys.readouterr().err
    assert nbrun.main(["--profile", "smoke", "--nb", "01", "--set-string", "browser_latents=5"]) == 2
    assert "belongs to 05_roc_entropy, which is not selected" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# Outputs: recorded in the stamp, checked before skipping; stale figures removed
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deleted_or_edited_output_reruns_and_stale_figures_go(echo_nb, tmp_dirs):
    figs = tmp_dirs[1] / "smoke"
    nbrun.run_notebook("98", "smoke", {"figs": ["a", "b"]}, progress=False)
    stamp = json.loads((nbrun.executed_dir("smoke") / "98_echo.stamp.json").read_text())
    assert set(stamp["outputs"]) == {"a.txt", "a.manifest.json", "b.txt", "b.manifest.json"}
    assert stamp["outputs"]["a.txt"] == file_sha256(figs / "a.txt")
    assert nbrun.is_up_to_date("98_echo", "smoke", {"figs": ["a", "b"]})
    (figs / "a.txt").unlink()
    assert "a.txt is missing" in nbrun.stale_reason("98_echo", "smoke", {"figs": ["a", "b"]})
    nbrun.run_notebook("98", "smoke", {"figs": ["a", "b"]}, progress=False)
    assert len(_runs(echo_nb)) == 2 and (figs / "a.txt").exists()
    (figs / "b.txt").write_text("edited by hand")
    assert "b.txt was changed" in nbrun.stale_reason("98_echo", "smoke", {"figs": ["a", "b"]})
    # a rerun that no longer makes figure b removes it (its manifest names this notebook), and nothing else
    (figs / "unrelated.manifest.json").write_text(json.dumps({"notebook": "01_toy_superposition", "profile": "smoke"}))
    nbrun.run_notebook("98", "smoke", {"figs": ["a"]}, progress=False)
    assert (figs / "a.txt").exists() and not (figs / "b.txt").exists() and not (figs / "b.manifest.json").exists()
    assert (figs / "unrelated.manifest.json").exists()


# --------------------------------------------------------------------------------------------------------------
# Read-only folders, SIGKILL leftovers
# --------------------------------------------------------------------------------------------------------------
def test_unwritable_output_folder_is_refused_before_work(echo_nb, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RSAE_FIGURES_DIR", str(blocker / "figures"))  # cannot be created, even by root
    assert nbrun.main(["--profile", "smoke", "--nb", "98"]) == 2
    assert f"output folder {blocker / 'figures' / 'smoke'} is not writable" in capsys.readouterr().err
    assert not echo_nb.exists(), "no kernel may start"
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        monkeypatch.setenv("RSAE_FIGURES_DIR", str(ro))
        with pytest.raises(SetupError, match=f"output folder {ro} is not writable"):
            nbrun.run_notebook("98", "default", progress=False)


_KILLED_BUILD = """
import sys, time
from pathlib import Path
from rsae_utils import runguard
from rsae_utils.store import cached_artifact
with runguard.RunSession("smoke", handle_signals=False):
    def build(tmp):
        (Path(tmp) / "part.bin").write_bytes(b"x" * 1000)
        time.sleep(120)
    cached_artifact(Path(sys.argv[1]), {"p": 1}, build)
"""


def test_sigkill_leaves_building_that_the_next_run_cleans(tmp_dirs):
    art = runguard.paths.work_dir("smoke") / "saes" / "one"
    proc = subprocess.Popen([PY, "-c", _KILLED_BUILD, str(art)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while not list(art.parent.glob(".one.*.building/part.bin")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(art.parent.glob(".one.*.building"))
    lock = runguard.paths.work_dir("smoke") / runguard.LOCK_NAME
    assert len(left) == 1 and lock.exists()
    with runguard.RunSession("smoke", handle_signals=False):
        pass
    assert not left[0].exists(), "the SIGKILLed run's .building folder must be cleaned by the next run"
    assert not lock.exists()
    assert (cached_artifact(art, {"p": 1}, lambda d: (d / "f").write_text("ok") and None) / "f").exists()


def test_unowned_temporary_entries_are_left_alone_while_fresh(tmp_dirs):
    """With no dead runner to blame, a fresh .building may be an interactive kernel's: only old ones go."""
    saes = runguard.paths.work_dir("smoke") / "saes"
    fresh, old = saes / ".fresh.x.building", saes / ".old.x.building"
    fresh.mkdir(parents=True)
    old.mkdir()
    tmp_file = runguard.paths.figures_dir("smoke") / ".fig.png.abc.tmp"
    tmp_file.write_bytes(b"half")
    for p in (old, tmp_file):
        os.utime(p, (time.time() - 2 * runguard.UNOWNED_GRACE_S,) * 2)
    with runguard.RunSession("smoke", handle_signals=False):
        pass
    assert fresh.exists() and not old.exists() and not tmp_file.exists()


def test_a_live_runner_holds_its_profile(tmp_dirs):
    with runguard.RunSession("smoke", handle_signals=False):
        lock = runguard.paths.work_dir("smoke") / runguard.LOCK_NAME
        other = subprocess.Popen([PY, "-c", "import time; time.sleep(30)"])
        try:
            rec = json.loads(lock.read_text())
            rec.update(pid=other.pid, pid_start=runguard.process_start(other.pid))
            lock.write_text(json.dumps(rec))
            with pytest.raises(SetupError, match=f"another run \\(pid {other.pid}\\)"):
                runguard.RunSession("smoke", handle_signals=False).__enter__()
        finally:
            other.kill()
            other.wait()


# --------------------------------------------------------------------------------------------------------------
# Ctrl-C on a real smoke run
# --------------------------------------------------------------------------------------------------------------
def _temp_leftovers(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if p.name.endswith((".building", ".tmp"))]


@pytest.mark.slow
def test_sigint_stops_the_kernel_prints_one_line_and_keeps_finished_work(tmp_dirs):
    build, figs = tmp_dirs
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [PY, "-m", "rsae_utils", "--profile", "smoke", "--nb", "02"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = build / "smoke" / runguard.LOCK_NAME
    kernels: list = []
    deadline = time.time() + 120
    while not kernels and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError, KeyError):  # not written yet, or mid-write
            kernels = json.loads(lock.read_text())["kernels"]
    assert kernels, "the runner should record the kernel it started"
    time.sleep(4)  # let the kernel get into its work
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == runguard.INTERRUPTED
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    for pid, start in kernels:
        assert not runguard.is_alive(pid, start), "the kernel must be gone when the runner exits"
    assert not lock.exists()
    assert not _temp_leftovers(build, figs)
    assert not (build / "smoke" / "executed" / "02_mmcs_goldilocks.stamp.json").exists()
    for man in figs.rglob("*.manifest.json"):  # whatever is there is whole
        for rec in json.loads(man.read_text())["files"].values():
            assert file_sha256(man.parent / rec["name"]) == rec["sha256"]


@pytest.mark.parametrize("delay_s", [0.3, 0.9, 1.5, 2.5])
def test_sigint_during_the_runners_imports_ends_in_one_line(tmp_dirs, delay_s):
    """Ctrl-C while torch and the parameter tables are still importing (or just after): no traceback, exit 130."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [PY, "-m", "rsae_utils", "--profile", "smoke", "--nb", "01"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell's background job (a CI step, say) starts with SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == runguard.INTERRUPTED
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


_ECHO_DRIVER = """
import sys
from rsae_utils import nbrun
from rsae_utils.params import core as P
P.NOTEBOOKS["98_echo"] = P.Notebook(params=[
    P.Param("n", 1, 2, 3, P.is_int(lo=0)), P.Param("fail", False, False, False, P.is_bool()),
    P.Param("figs", [], [], [], P.list_of(P.is_str(), min_len=0)), P.Param("sleep", 0, 0, 0, P.is_float(0.0)),
])
sys.exit(nbrun.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_kills_a_sleeping_kernel(echo_nb, tmp_dirs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [PY, "-c", _ECHO_DRIVER, "--profile", "smoke", "--nb", "98", "--set-string", "sleep=120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not echo_nb.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)  # the kernel has started its work once the echo log exists
    kernels = json.loads((tmp_dirs[0] / "smoke" / runguard.LOCK_NAME).read_text())["kernels"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == runguard.INTERRUPTED, err
    assert kernels and not any(runguard.is_alive(pid, start) for pid, start in kernels)


# --------------------------------------------------------------------------------------------------------------
# The lock: two runners released at one instant, exactly one enters
# --------------------------------------------------------------------------------------------------------------
def _contender(build: str, barrier, results, trials: int) -> None:
    """One runner process: at each trial try the profile lock together with the other, hold it a moment, leave."""
    os.environ["RSAE_BUILD_DIR"] = build
    for _ in range(trials):
        barrier.wait(timeout=60)  # both released at one instant
        session = runguard.RunSession("smoke", handle_signals=False)
        try:
            session.__enter__()
        except SetupError:
            entered = False
        else:
            entered = True
        barrier.wait(timeout=60)  # both have tried: whoever entered still holds the lock here
        if entered:
            session.__exit__(None, None, None)
        results.put(entered)
        barrier.wait(timeout=60)  # the lock is released before the next trial


def test_two_runners_started_at_one_instant_never_both_hold_the_profile(tmp_dirs):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # this process has imported everything already: quick to start
    trials = 10
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(str(tmp_dirs[0]), barrier, results, trials)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    entered = [results.get(timeout=5) for _ in range(2 * trials)]
    assert sum(entered) == trials, f"exactly one of two runners may enter each time; {sum(entered)} of {2 * trials}"
    assert not (tmp_dirs[0] / "smoke" / runguard.LOCK_NAME).exists(), "the winner removes its own record"


def test_a_run_removes_only_its_own_lock_record(tmp_dirs):
    session = runguard.RunSession("smoke", handle_signals=False)
    session.__enter__()
    record = session.lock
    other = {"pid": 1, "pid_start": None, "started": 0.0, "kernels": []}  # as if another run had written it
    record.write_text(json.dumps(other))
    session.__exit__(None, None, None)
    assert json.loads(record.read_text()) == other


# --------------------------------------------------------------------------------------------------------------
# Damaged stamps, read-only subfolders, leftovers of interrupted runs
# --------------------------------------------------------------------------------------------------------------
def test_a_damaged_upstream_stamp_means_rerun_that_notebook(tmp_dirs, monkeypatch, capsys):
    """`echo '{"stamp": ' > 03's stamp`: no traceback; 03 is run again first, said in one line."""
    stamp = nbrun.executed_dir("smoke") / "03_sae_training.stamp.json"
    ran: list[str] = []
    monkeypatch.setattr(nbrun, "run_notebook", lambda n, *a, **k: ran.append(n))
    for damage in ('{"stamp": ', "null", '{"no": "stamp"}'):
        stamp.write_text(damage + "\n")
        assert isinstance(nbrun.notebook_stamp("04_autointerp", "smoke", {"llm_backends": []}), str)
        ran.clear()
        nbrun.run_many(["04_autointerp"], "smoke", {"llm_backends": []})
        assert ran == ["03_sae_training", "04_autointerp"]
        out = capsys.readouterr().out
        assert f"{stamp} is damaged" in out and "running it first" in out


def test_a_read_only_subfolder_is_refused_before_work(tmp_dirs, monkeypatch):
    executed = nbrun.executed_dir("smoke")
    (runguard.paths.work_dir("smoke") / "saes" / "m" / "v").mkdir(parents=True)
    real_access = os.access

    def access(path, mode, **kw):  # as a user without root rights sees `chmod a-w build/smoke/executed`
        if Path(path) == executed and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(SetupError, match=f"output folder {executed} is not writable") as info:
        runguard.check_writable(nbrun.output_folders("smoke"))
    assert "\n" not in str(info.value) and "chmod" in str(info.value)
    # figures/ of the default profile holds the other profiles' folders: they are not this run's to check
    figs = runguard.paths.figures_dir("default")
    (figs / "smoke").mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(os, "access", lambda p, m, **kw: Path(p) != figs / "smoke" and real_access(p, m, **kw))
    runguard.check_writable(nbrun.output_folders("default"))


def test_old_artifact_folders_of_dead_runs_and_stale_llm_cache_temps_are_cleaned(tmp_dirs, monkeypatch):
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    saes = runguard.paths.work_dir("smoke") / "saes"
    old_dead, old_live = saes / f".sae.old-{dead.pid}", saes / f".sae.old-{os.getpid()}"
    for d in (old_dead, old_live):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "w.bin").write_bytes(b"x")
    llm = runguard.paths.llm_response_cache_dir()
    stale_tmp, fresh_tmp = llm / "ab" / ".abc.json.x1.tmp", llm / "ab" / ".abd.json.x2.tmp"
    stale_tmp.parent.mkdir(parents=True)
    for p in (stale_tmp, fresh_tmp):
        p.write_text("half")
    os.utime(stale_tmp, (time.time() - 2 * runguard.UNOWNED_GRACE_S,) * 2)
    # a runner that died a minute ago: what changed in its profile since then was its, but not the shared LLM cache
    lock = runguard.paths.work_dir("smoke") / runguard.LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "pid_start": None, "started": time.time() - 60, "kernels": []}))
    with runguard.RunSession("smoke", handle_signals=False):
        pass
    assert not old_dead.exists() and old_live.exists(), "only a dead run's .old folder goes"
    assert not stale_tmp.exists() and fresh_tmp.exists(), "another profile's run may be writing a fresh one"


# --------------------------------------------------------------------------------------------------------------
# "Up to date" checks the artifacts a notebook made or used, not only its stamp
# --------------------------------------------------------------------------------------------------------------
_ARTIFACT_NB = """# %% tags=["parameters"]
PROFILE = "default"
OVERRIDES = {}

# %%
import json, os, pathlib
import pandas as pd
from rsae_utils import paths
from rsae_utils.store import cached_artifact, save_table
log = pathlib.Path(os.environ["RSAE_BUILD_DIR"]) / "art_runs.json"
log.write_text(json.dumps((json.loads(log.read_text()) if log.exists() else []) + [1]))
def build(tmp):
    (tmp / "weights.bin").write_bytes(bytes(range(256)) * 64)
cached_artifact(paths.work_dir(PROFILE) / "saes" / "one", {"n": 1}, build)
save_table(pd.DataFrame({"layer": [0, 1]}), paths.work_dir(PROFILE) / "sae_runs.csv", {"n": 1})
"""


@pytest.mark.slow
def test_up_to_date_verifies_the_artifacts_the_run_recorded(echo_nb, tmp_dirs, monkeypatch, capsys):
    from rsae_utils.params import core as P

    (Path(os.environ["RSAE_NOTEBOOKS_DIR"]) / "97_art.py").write_text(_ARTIFACT_NB)
    monkeypatch.setitem(P.NOTEBOOKS, "97_art", P.Notebook(params=[P.Param("n", 1, 1, 1, P.is_int())]))
    runs = tmp_dirs[0] / "art_runs.json"
    nbrun.run_notebook("97", "smoke", progress=False)
    stamp = json.loads((nbrun.executed_dir("smoke") / "97_art.stamp.json").read_text())
    assert set(stamp["artifacts"]) == {"smoke/saes/one", "smoke/sae_runs.csv"}
    weights = tmp_dirs[0] / "smoke" / "saes" / "one" / "weights.bin"
    assert stamp["artifacts"]["smoke/saes/one"]["weights.bin"][0] == weights.stat().st_size == 256 * 64
    assert nbrun.stale_reason("97_art", "smoke") is None
    nbrun.run_notebook("97", "smoke", progress=False)
    assert "up to date" in capsys.readouterr().out and json.loads(runs.read_text()) == [1]

    os.utime(weights)  # touched, same bytes: still up to date (hashed once, found equal)
    assert nbrun.stale_reason("97_art", "smoke") is None
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes: what a bad disk does
    weights.write_bytes(bytes(data))
    assert "was rewritten with other bytes (damaged)" in nbrun.stale_reason("97_art", "smoke")
    weights.write_bytes(bytes(data[:-1]))
    assert f"file {weights} has {256 * 64 - 1} bytes" in nbrun.stale_reason("97_art", "smoke")
    table = tmp_dirs[0] / "smoke" / "sae_runs.csv"
    nbrun.run_notebook("97", "smoke", progress=False)  # rerun: the damaged SAE is rebuilt (with a warning)
    assert json.loads(runs.read_text()) == [1, 1] and nbrun.stale_reason("97_art", "smoke") is None
    table.write_text(table.read_text().replace("1", "7"))
    assert f"artifact {table}: file {table} was rewritten" in nbrun.stale_reason("97_art", "smoke")
    # what reads the damaged table says what to run
    from rsae_utils.errors import ArtifactError
    from rsae_utils.sae.pipeline import trained_runs

    with pytest.raises(ArtifactError, match=r"corrupt\); rerun notebook 03: make figures NB=03 PROFILE=smoke"):
        trained_runs("smoke")
