"""Every artifact a later stage reads is verified when opened, named when damaged, and rebuilt by its producer;
what is derived from it is keyed by its content, so a repaired input invalidates what was made from the damage."""

from __future__ import annotations

import json
import os
import time
import warnings

import pandas as pd
import pytest
import torch
from _tiny_model import tiny_model, tiny_windows
from autointerp_helpers import decode
from safetensors.torch import load_file, save_file

from rsae_utils import store
from rsae_utils.autointerp.pipeline import run_autointerp
from rsae_utils.errors import ArtifactError, CacheError, ParameterError, StageError
from rsae_utils.params import resolve
from rsae_utils.sae.cache import is_complete, open_cache
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.train import SAESpec, load_sae, train_sae

META = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}
SPEC = SAESpec(architecture="topk", expansion=4, k=6, n_tokens=1024, batch_size=128, lr=4e-3, seed=3)
TEST_SHARD = "shard-test-00000.safetensors"


def _cache(path):
    return harvest(tiny_model(), tiny_windows(n_train=16, n_test=16), [1], path, META, batch_size=16)


def _overwrite_middle(path, n=64):
    """Same size, different bytes (what a bad disk or a stray write does)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = os.urandom(n)
    path.write_bytes(bytes(data))


def test_damaged_shard_is_refused_by_a_plain_open(tmp_path):
    _cache(tmp_path / "c")
    _overwrite_middle(tmp_path / "c" / TEST_SHARD)
    with pytest.raises(CacheError, match=TEST_SHARD):
        open_cache(tmp_path / "c")  # the default opens with hashes checked
    assert not is_complete(tmp_path / "c")
    assert open_cache(tmp_path / "c", check_hash=False)  # sizes only: the producer's quick look


def test_corrupt_cache_manifest_is_named_then_rebuilt(tmp_path):
    good = [s["sha256"] for s in _cache(tmp_path / "c").manifest["shards"]]
    man = tmp_path / "c" / "manifest.json"
    for junk in (
        "{not json",
        "[1, 2]",
        json.dumps({"format": "rsae-activation-cache/1", "complete": True, "shards": [{"x": 1}]}),
    ):
        man.write_text(junk)
        with pytest.raises(CacheError, match="manifest.json"):
            open_cache(tmp_path / "c")
        assert not is_complete(tmp_path / "c")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            redone = _cache(tmp_path / "c")  # the producer rebuilds instead of crashing
        assert [s["sha256"] for s in redone.manifest["shards"]] == good
        open_cache(tmp_path / "c")


def test_hashes_are_remembered_but_a_rewrite_is_seen(tmp_path, monkeypatch):
    g = tmp_path / "g.bin"
    g.write_bytes(b"c" * 10)
    store.file_sha256(g)
    assert not any(k[0] == str(g) for k in store._HASHES)  # a file changed just now is never remembered
    monkeypatch.setattr(store, "_RACY_NS", -1)  # remember everything: the key alone must see a rewrite
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 1000)
    first = store.file_sha256(f)
    assert any(k[0] == str(f) for k in store._HASHES)
    time.sleep(0.05)  # past the filesystem's timestamp tick
    f.write_bytes(b"b" * 1000)  # same size, same inode; a new mtime
    assert store.file_sha256(f) != first
    store.forget_hashes()


@pytest.fixture
def sae_dir(tmp_path):
    return train_sae(_cache(tmp_path / "c"), 1, SPEC, tmp_path / "sae")


def test_damaged_sae_weights_are_named(sae_dir):
    weights = sae_dir / "sae_weights.safetensors"
    good = weights.read_bytes()
    _overwrite_middle(weights)  # same size: only the hash can tell
    with pytest.raises(ArtifactError, match=r"sae_weights\.safetensors.*sha256.*rerun notebook 03"):
        load_sae(sae_dir)
    weights.write_bytes(good[: len(good) // 2])  # truncated: no bare SafetensorError
    with pytest.raises(ArtifactError, match=r"sae_weights\.safetensors has \d+ bytes"):
        load_sae(sae_dir)
    weights.write_bytes(good)
    assert load_sae(sae_dir).cfg.d_sae == 128


def test_damaged_sae_is_retrained_by_its_producer(tmp_path, sae_dir):
    weights = sae_dir / "sae_weights.safetensors"
    good = store.file_sha256(weights)
    _overwrite_middle(weights)
    with pytest.warns(UserWarning, match="rebuilding.*sae_weights"):
        train_sae(open_cache(tmp_path / "c"), 1, SPEC, sae_dir)
    assert store.file_sha256(weights) == good  # same seed, same weights


def test_corrupt_table_manifest_is_named(tmp_path):
    path = store.save_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv", {"p": 1})
    man = tmp_path / "t.csv.manifest.json"
    for junk in ("{oops", "[]", "{}"):
        man.write_text(junk)
        with pytest.raises(ArtifactError, match=r"t\.csv\.manifest\.json: unreadable table manifest"):
            store.load_table(path)
    man.unlink()
    with pytest.raises(ArtifactError, match="manifest is missing"):
        store.load_table(path)


def test_corrupt_artifact_manifest_is_a_reason_not_a_crash(tmp_path):
    d = store.cached_artifact(tmp_path / "a", {"n": 1}, lambda tmp: (tmp / "x.txt").write_text("x") and None)
    (d / "manifest.json").write_text('{"files": {"x.txt": 3}}')
    ok, why = store.verify_artifact(d)
    assert not ok and "manifest.json" in why
    with pytest.raises(ArtifactError, match="manifest.json"):
        store.content_hash(d)


# ----------------------------------------------------------------------------------------------------------------
# Notebook 04's records: inputs verified, records keyed by content
# ----------------------------------------------------------------------------------------------------------------
CFG = resolve(
    "04_autointerp",
    "smoke",
    dict(
        n_latents=3,
        min_examples=2,
        n_explain=1,
        explain_pool=1,
        n_bins=1,
        per_bin=1,
        n_negatives=1,
        window_len=8,
        llm_backends=[],
        llm_layers=None,
    ),
)


def _max_act(res):
    return max(w.max_act for recs in res.records.values() for r in recs for w in r.explain)


def _restamp(cache_root, name):
    """Make the manifest agree with a changed shard (a cache whose content changed and verifies)."""
    man = json.loads((cache_root / "manifest.json").read_text())
    for s in man["shards"]:
        if s["file"] == name:
            s.update(store.file_record(cache_root / name))
    (cache_root / "manifest.json").write_text(json.dumps(man))


def test_poisoned_input_is_refused_and_records_follow_the_repair(tmp_path, sae_dir):
    cache_root = tmp_path / "c"
    runs = pd.DataFrame(
        [dict(model="tiny-test", variant="trained", layer=1, sae_dir=str(sae_dir), cache_dir=str(cache_root))]
    )
    out = tmp_path / "ai"

    def run():
        return run_autointerp(CFG, runs, [], out, decoders=lambda m: decode, progress=False)

    clean = run()
    shard = cache_root / TEST_SHARD
    good = shard.read_bytes()
    # 1. a damaged shard (manifest untouched) is refused, naming the file and what to rerun
    _overwrite_middle(shard)
    with pytest.raises(CacheError, match=rf"{TEST_SHARD}.*rerun notebook 03"):
        run()
    # 2. a damaged SAE likewise
    shard.write_bytes(good)
    weights = sae_dir / "sae_weights.safetensors"
    w_good = weights.read_bytes()
    _overwrite_middle(weights)
    with pytest.raises(ArtifactError, match=r"sae_weights\.safetensors.*rerun notebook 03"):
        run()
    weights.write_bytes(w_good)
    # 3. a poisoned cache that verifies (values x 1e30, manifest restamped) gives poisoned records ...
    tensors = load_file(shard)
    save_file({k: v * 1e30 for k, v in tensors.items()}, shard)
    assert shard.stat().st_size == len(good)
    _restamp(cache_root, TEST_SHARD)
    poisoned = run()
    assert _max_act(poisoned) > 1e20
    # ... and once the cache is repaired, the records are made again from the repaired content, not reused
    shard.write_bytes(good)
    _restamp(cache_root, TEST_SHARD)
    repaired = run()
    assert _max_act(repaired) == pytest.approx(_max_act(clean)) and _max_act(repaired) < 1e6
    assert torch.isfinite(torch.tensor(repaired.latents["auroc"].dropna().to_numpy())).all()


def test_llm_layers_not_trained_are_refused_by_the_parameters(tmp_dirs):
    build, _ = tmp_dirs
    index = build / "smoke" / "sae_runs.csv"
    index.parent.mkdir(parents=True)
    runs = pd.DataFrame(
        [
            dict(model="m", variant=v, label=v, layer=x, sae_dir="s", cache_dir="c")
            for v in ("trained", "control")
            for x in (0, 2)
        ]
    )
    store.save_table(runs, index, {})
    assert resolve("04_autointerp", "smoke", {"llm_layers": [2]}).llm_layers == [2]
    with pytest.raises(ParameterError, match=r"llm_layers.*\[5\].*trained layers: \[0, 2\]"):
        resolve("04_autointerp", "smoke", {"llm_layers": [0, 5]})
    resolve("04_autointerp", "smoke", {"llm_layers": [5], "llm_backends": []})  # no LLM: nothing to check


def test_stage_error_when_cache_is_damaged_before_training(tmp_dirs):
    """Notebook 03 itself: a corrupt cache manifest is rebuilt by build_cache, never a raw JSONDecodeError."""
    from rsae_utils.sae.pipeline import SAEPipeline

    cfg = resolve("03_sae_training", "smoke", {"variants": ["trained"], "layers": [0], "train_tokens": 1024})
    exp = SAEPipeline(cfg)
    exp.build_cache("trained")
    good = store.file_sha256(exp.cache_dir("trained") / TEST_SHARD)
    (exp.cache_dir("trained") / "manifest.json").write_text("{truncated")
    fresh = SAEPipeline(cfg)
    with pytest.raises(StageError, match=r"manifest\.json.*build_cache\('trained'\)"):
        fresh.train("trained")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.build_cache("trained")
    assert store.file_sha256(exp.cache_dir("trained") / TEST_SHARD) == good
    fresh.train("trained")


def test_damaged_tokens_file_is_refused_and_rewritten(tmp_path):
    _cache(tmp_path / "c")
    tokens = tmp_path / "c" / "tokens.safetensors"
    good = tokens.read_bytes()
    _overwrite_middle(tokens, n=8)
    with pytest.raises(CacheError, match="tokens.safetensors"):
        open_cache(tmp_path / "c")
    _cache(tmp_path / "c")
    assert tokens.read_bytes() == good and open_cache(tmp_path / "c")
