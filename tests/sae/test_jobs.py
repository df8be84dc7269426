"""executor='submitit-local': notebook 03's per-variant work as submitit jobs in child processes, writing the same
artifacts under the same keys as a local run; a job that fails once is resubmitted, one that keeps failing stops
the run naming the variant. Needs submitit (an optional dependency): skipped without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _flaky_job import flaky_variant_job

from rsae_utils.errors import StageError
from rsae_utils.params import nb03_sae, resolve
from rsae_utils.sae import jobs
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.store import verify_artifact

pytest.importorskip("submitit")
pytestmark = pytest.mark.slow

SMALL = {
    "variants": ["trained", "control"],
    "layers": [0, 3],
    "train_tokens": 2048,
    "executor": "submitit-local",
    "executor_options": {"timeout_min": 10},
}


def _files(build: Path) -> dict[str, int]:
    work = build / "smoke"
    files = list(work.glob("caches/**/*.safetensors")) + list(work.glob("saes/**/sae_weights.safetensors"))
    return {str(p): p.stat().st_mtime_ns for p in files}


def test_submitit_local_jobs_write_the_local_runs_artifacts_and_rerun_a_failed_task(tmp_dirs, monkeypatch):
    assert jobs.EXECUTORS == nb03_sae.EXECUTORS
    tests_dir = str(Path(__file__).resolve().parents[1])  # the helper modules live in tests/
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RSAE_TEST_FAIL_ONCE", "control")
    build, _ = tmp_dirs
    cfg = resolve("03_sae_training", "smoke", SMALL)
    lines: list[str] = []
    out = jobs.run_variant_jobs(cfg, job=flaky_variant_job, log=lines.append)
    assert set(out) == {"trained", "control"} and (build / "failed-once-control").exists()
    assert any("failed: ['control']; resubmitting" in x for x in lines) and "attempt 2: 1 job(s)" in lines[-1]

    # the jobs' artifacts are the local run's: the notebook's own stages find them finished and rewrite nothing
    before = _files(build)
    exp = SAEPipeline(cfg)
    for variant in cfg.variants:
        exp.build_cache(variant)
        assert exp.train(variant) == {int(k): Path(v) for k, v in out[variant]["saes"].items()}
        assert all(verify_artifact(p)[0] for p in exp.trained(variant).values())
    assert _files(build) == before and exp._loaded is None  # nothing harvested or trained again: no model loaded
    assert set(exp.measure_all().variant) == {"trained", "control"}

    # a job that keeps failing stops the run, naming the variant and its log
    monkeypatch.setenv("RSAE_TEST_FAIL_ONCE", "trained")
    (build / "failed-once-trained").unlink(missing_ok=True)
    with pytest.raises(StageError, match=r"trained: RuntimeError: trained: failing on purpose.*log "):
        jobs.run_variant_jobs(cfg, job=flaky_variant_job, retries=0, log=lines.append)
