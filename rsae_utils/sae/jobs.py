"""Notebook 03's per-variant work as a job array (SLURM, or local processes) through submitit.

With ``executor`` 'slurm' or 'submitit-local', each variant's activation cache and SAEs are made by its own job
(:func:`variant_job`: :meth:`SAEPipeline.build_cache` then :meth:`SAEPipeline.train`), submitted together as one
array. The jobs write into the same artifact store, under the same keys, as a run in the notebook's own process,
so the notebook's stages afterwards find every cache and SAE finished and only read them (metrics and the index
are made in the notebook). A job that fails is resubmitted (``retries`` times); one that still fails stops the run
with :class:`~rsae_utils.errors.StageError` naming the variant and its log. ``executor_options`` go to submitit's
``update_parameters`` unchanged (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``mem_gb``, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from rsae_utils import paths
from rsae_utils.errors import StageError
from rsae_utils.sae.pipeline import SAEPipeline

EXECUTORS = ("local", "slurm", "submitit-local")
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*:")


class JobConfig(dict):
    """The resolved parameters a job gets (a plain dict, picklable), with the attribute access SAEPipeline uses."""

    def __init__(self, values: Mapping[str, Any], profile: str):
        super().__init__(values)
        self.profile = profile

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return {"notebook": "03_sae_training", "profile": self.profile, "params": dict(self)}


def variant_job(values: Mapping[str, Any], profile: str, variant: str, build_dir: str) -> dict[str, Any]:
    """One job: the cache and SAEs of ``variant``, written under ``build_dir`` (the submitting run's)."""
    os.environ["RSAE_BUILD_DIR"] = build_dir
    exp = SAEPipeline(JobConfig(values, profile))
    exp.build_cache(variant)
    saes = exp.train(variant)
    return {"variant": variant, "saes": {int(k): str(v) for k, v in saes.items()}, "timings_s": exp.timings}


def make_executor(kind: str, folder: str, options: Mapping[str, Any]):
    import submitit  # deferred: only runs with executor != 'local' need it

    if kind not in EXECUTORS[1:]:
        raise StageError(f"executor {kind!r} submits no jobs; use one of {EXECUTORS[1:]}")
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if kind == "submitit-local" else "slurm")
    if options:
        executor.update_parameters(**dict(options))
    return executor


def _job_error(err: BaseException) -> str:
    """The job's own exception line from submitit's FailedJobError (which carries the job's traceback), else the
    error itself."""
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    own = [x for x in lines if _EXC_LINE.match(x)]
    return (own[-1] if own else f"{type(err).__name__}: {lines[-1] if lines else ''}")[:300]


def run_variant_jobs(
    cfg: Any, job: Callable[..., dict[str, Any]] = variant_job, retries: int = 1, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Submit one job per variant of ``cfg`` (a resolved notebook-03 Config), wait, resubmit failures; {variant:
    what the job returned}."""
    folder = paths.jobs_dir(cfg.profile) / "%j"
    executor = make_executor(cfg.executor, str(folder), cfg.executor_options)
    values, build = dict(cfg.items()), str(paths.build_dir())
    results: dict[str, dict[str, Any]] = {}
    pending, errors = list(cfg.variants), {}
    for attempt in range(retries + 1):
        with executor.batch():
            jobs = {v: executor.submit(job, values, cfg.profile, v, build) for v in pending}
        log(
            f"[jobs] attempt {attempt + 1}: {len(jobs)} job(s) on {cfg.executor}: "
            + ", ".join(f"{v}={j.job_id}" for v, j in jobs.items())
        )
        errors = {}
        for variant, j in jobs.items():
            try:
                results[variant] = j.result()
            except Exception as err:  # noqa: BLE001 - submitit re-raises the job's own failure
                errors[variant] = f"{_job_error(err)} (log {j.paths.stderr})"
        if not errors:
            return results
        log(f"[jobs] failed: {sorted(errors)}" + ("; resubmitting" if attempt < retries else ""))
        pending = list(errors)
    raise StageError(
        "variant job(s) failed after "
        + f"{retries + 1} attempt(s): "
        + "; ".join(f"{v}: {e}" for v, e in errors.items())
    )
