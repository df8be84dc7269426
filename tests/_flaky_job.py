"""A notebook-03 variant job that fails on its first attempt for one variant (named by ``RSAE_TEST_FAIL_ONCE``),
then runs the real job: submitit's retry path, tested across processes (the job runs in a child process)."""

from __future__ import annotations

import os
from pathlib import Path

from rsae_utils.sae.jobs import variant_job


def flaky_variant_job(values, profile, variant, build_dir):
    marker = Path(build_dir) / f"failed-once-{variant}"
    if variant == os.environ.get("RSAE_TEST_FAIL_ONCE") and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("failed once")
        raise RuntimeError(f"{variant}: failing on purpose (first attempt)")
    return variant_job(values, profile, variant, build_dir)
