"""The artifact store: atomic writes, reuse of finished work, detection of stale and corrupt artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from rsae_utils import store
from rsae_utils.repro import stable_hash


def _builder(calls: list, payload: str = "hello"):
    def build(tmp: Path):
        calls.append(tmp)
        (tmp / "data.txt").write_text(payload)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "more.bin").write_bytes(b"\x00\x01" * 10)
        return {"extra_field": 7}

    return build


def test_stable_hash_ignores_key_order_and_distinguishes_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = store.atomic_write_text(tmp_path / "x" / "f.txt", "abc")
    assert p.read_text() == "abc"
    assert [f.name for f in p.parent.iterdir()] == ["f.txt"]


def test_atomic_write_gives_the_umask_mode_not_a_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        p = store.atomic_write_text(tmp_path / "f.txt", "abc")
        plain = tmp_path / "plain.txt"
        plain.write_text("abc")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


def test_cached_artifact_is_reused_with_same_params(tmp_path):
    calls: list = []
    d = store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    man = store.load_manifest(d)
    assert man["params"] == {"n": 1} and man["extra_field"] == 7
    assert set(man["files"]) == {"data.txt", "sub/more.bin"}
    assert "packages" in man["provenance"] and "git_rev" in man["provenance"]
    store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    assert len(calls) == 1


def test_cached_artifact_rebuilds_when_params_change(tmp_path):
    calls: list = []
    store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls, "one"))
    with pytest.warns(UserWarning, match="other parameters"):
        d = store.cached_artifact(tmp_path / "art", {"n": 2}, _builder(calls, "two"))
    assert len(calls) == 2 and (d / "data.txt").read_text() == "two"


def test_cached_artifact_rebuilds_corrupt_files(tmp_path):
    calls: list = []
    d = store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    (d / "data.txt").write_text("hellO")  # same size, other bytes
    ok, reason = store.verify_artifact(d)
    assert not ok and "sha256" in reason
    with pytest.raises(store.ArtifactError):
        store.load_manifest(d)
    with pytest.warns(UserWarning, match="sha256"):
        store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    assert len(calls) == 2 and (d / "data.txt").read_text() == "hello"


def test_interrupted_build_leaves_nothing_behind(tmp_path):
    def broken(tmp: Path):
        (tmp / "half.txt").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.cached_artifact(tmp_path / "art", {"n": 1}, broken)
    assert list(tmp_path.iterdir()) == []


def test_code_change_makes_artifact_stale(tmp_path, monkeypatch):
    import rsae_utils.store as mod

    key_a = store.artifact_key({"n": 1}, [mod])
    monkeypatch.setattr("inspect.getsource", lambda m: "changed source")
    assert store.artifact_key({"n": 1}, [mod]) != key_a


def test_tables_round_trip_and_detect_edits(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    p = store.save_table(df, tmp_path / "t.csv", {"p": 1})
    pd.testing.assert_frame_equal(store.load_table(p), df)
    meta = json.loads((tmp_path / "t.csv.manifest.json").read_text())
    assert meta["rows"] == 2 and meta["params"] == {"p": 1}
    with open(p, "a") as fh:
        fh.write("3,z\n")
    with pytest.raises(store.ArtifactError, match="do not match"):
        store.load_table(p)
    os.remove(tmp_path / "t.csv.manifest.json")
    with pytest.raises(store.ArtifactError, match="missing"):
        store.load_table(p)


def test_provenance_ignores_rewritten_figures_but_not_edited_code(tmp_path, monkeypatch):
    import subprocess

    from rsae_utils import paths, repro

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)

    def dirty():
        repro.git_revision.cache_clear()
        return repro.git_revision()["git_dirty"]

    assert dirty() is False
    (tmp_path / "figures" / "f.csv").write_text("b\n")  # a run rewrote a figure's table
    assert dirty() is False
    (tmp_path / "code.py").write_text("x = 2\n")  # the code that made it was edited
    assert dirty() is True
    repro.git_revision.cache_clear()


def test_artifacts_get_the_umask_modes_so_a_group_can_read_them(tmp_path):
    """mkdtemp makes the folder 0700 and safetensors writes 0600: after the rename, modes follow the umask."""
    import torch
    from safetensors.torch import save_file

    def build(tmp: Path):
        save_file({"w": torch.zeros(4)}, str(tmp / "sae_weights.safetensors"))
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "cfg.json").write_text("{}")

    old = os.umask(0o022)
    try:
        d = store.cached_artifact(tmp_path / "art", {"n": 1}, build)
    finally:
        os.umask(old)
    modes = {str(p.relative_to(d)): p.stat().st_mode & 0o777 for p in d.rglob("*")}
    assert d.stat().st_mode & 0o777 == 0o755
    assert modes == {"sae_weights.safetensors": 0o644, "sub": 0o755, "sub/cfg.json": 0o644, "manifest.json": 0o644}


@pytest.mark.parametrize("text", ["null", '{"files": 5}', "[]"])
def test_a_manifest_that_is_no_manifest_is_called_unreadable(tmp_path, text):
    calls: list = []
    d = store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    (d / store.MANIFEST).write_text(text)
    with pytest.warns(UserWarning, match="rebuilding .*: unreadable manifest"):
        store.cached_artifact(tmp_path / "art", {"n": 1}, _builder(calls))
    assert len(calls) == 2
