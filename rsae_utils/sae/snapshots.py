"""One training run, several budgets: the fast trainer's SAE saved at each of a series of token counts.

Why this is exact and not an approximation: the fast trainer's learning rate is constant after its warm-up, its
dead-latent window is a number of expected activations (:func:`rsae_utils.sae.spec.dead_window_tokens`), not a
share of the run, and its batches come in a seeded order that does not depend on the run's length. So the state
after ``b`` tokens of a long run *is* the SAE a run of ``b`` tokens trains. Each snapshot is stored as the
artifact :func:`rsae_utils.sae.train.train_sae` would write for the spec with ``n_tokens = b`` (same folder
layout, record and key): a later ``train_sae`` of that spec reuses it, and a test checks the weights are equal.

A training-budget study then costs one run to its largest budget instead of the sum of all budgets.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rsae_utils.errors import ParameterError
from rsae_utils.repro import seed_everything
from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.resume import Checkpointer
from rsae_utils.sae.spec import FAST, SAESpec
from rsae_utils.sae.topk import TopKTrainer, to_sae_lens
from rsae_utils.sae.train import RECORD, sae_code, sae_metadata, sae_params
from rsae_utils.sae.trainers import fast_options, fast_record, spec_batches
from rsae_utils.store import artifact_key, cached_artifact, note_artifact, verify_artifact, write_json

__all__ = ["geometric_budgets", "snapshot_spec", "train_snapshots"]


def geometric_budgets(start: int, stop: int, factor: int = 4) -> list[int]:
    """``start, start * factor, ...`` up to ``stop`` (inclusive when it lands on it): token budgets."""
    if start < 1 or stop < start or factor < 2:
        raise ParameterError(
            f"parameters 'start', 'stop', 'factor' must satisfy 1 <= start <= stop and factor >= 2; "
            f"got {start}, {stop}, {factor}"
        )
    out = [int(start)]
    while out[-1] * factor <= stop:
        out.append(out[-1] * factor)
    return out


def snapshot_spec(spec: SAESpec, budget: int) -> SAESpec:
    """The spec of the SAE a run of ``spec`` holds after ``budget`` tokens."""
    return replace(spec, n_tokens=int(budget))


def _check(spec: SAESpec, budgets: Sequence[int]) -> list[int]:
    if spec.trainer != FAST:
        raise ParameterError(f"parameter 'spec.trainer' must be {FAST!r} for snapshots; got {spec.trainer!r}")
    if spec.lr_warm_up_steps:
        raise ParameterError(
            f"parameter 'spec.lr_warm_up_steps' must be 0 for snapshots (a warm-up would differ between budgets); "
            f"got {spec.lr_warm_up_steps}"
        )
    bad = [b for b in budgets if int(b) < spec.batch_size or int(b) % spec.batch_size]
    if not budgets or bad:
        raise ParameterError(
            f"parameter 'budgets' must be non-empty whole multiples of batch_size ({spec.batch_size}); got {bad}"
        )
    return sorted({int(b) for b in budgets})


def train_snapshots(
    cache: ActivationCache,
    layer: int,
    spec: SAESpec,
    budgets: Sequence[int],
    out_dir: Callable[[SAESpec], Path],
    progress: Callable[[int], None] | None = None,
    checkpoint_s: float | None = None,
) -> dict[int, Path]:
    """{budget: SAE folder} of ``spec`` (fast trainer) on ``cache``'s layer after each of ``budgets`` tokens, from
    one run to the largest; ``out_dir(snapshot_spec)`` names each folder. Snapshots already stored with their key
    are reused; when every one is there nothing trains, otherwise the run restarts from the beginning and
    rewrites only the missing ones. ``checkpoint_s``: save the run's whole state next to its largest snapshot at
    most every that many seconds, and resume from it after an interruption, bit-equal (:mod:`rsae_utils.sae.resume`;
    None: never, for runs of minutes). ``progress(tokens)`` is called after every step (a tqdm's update)."""
    budgets = _check(spec, budgets)
    spec.validate(cache.d_model)
    code = sae_code(spec)
    todo = {}
    out = {}
    for b in budgets:
        s = snapshot_spec(spec, b)
        path, params = out_dir(s), sae_params(cache, layer, s)
        out[b] = path
        if not verify_artifact(path, artifact_key(params, code))[0]:
            todo[b] = (s, params)
    if not todo:
        for path in out.values():
            note_artifact(path)  # verified above: noted for the runner's stamp, not hashed again
        return out
    seed_everything(spec.seed)
    t0 = time.perf_counter()
    trainer = TopKTrainer(cache.d_model, spec.d_sae(cache.d_model), spec.k, **fast_options(cache, spec))
    last = max(todo)
    ck_path = out[last].parent / f"{out[last].name}.resume.pt"
    ck = Checkpointer(ck_path, artifact_key(todo[last][1], code), checkpoint_s)
    batches, curve, before_s = ck.resume(trainer, spec_batches(cache, layer, spec), min(todo))
    if progress is not None and trainer.tokens:
        progress(trainer.tokens)
    for batch in itertools.islice(batches, last // spec.batch_size - trainer.steps):
        step = trainer.step(batch)
        if trainer.steps % spec.log_every == 0:
            curve.append(_point(trainer, step))
        if progress is not None:
            progress(batch.shape[0])
        elapsed = before_s + time.perf_counter() - t0
        if trainer.tokens in todo:
            s, params = todo[trainer.tokens]
            points = curve if curve and curve[-1]["step"] == trainer.steps else [*curve, _point(trainer, step)]
            _save(cache, layer, s, params, trainer, points, elapsed, out[trainer.tokens], code)
        if trainer.tokens < last:
            ck.maybe_save(trainer, curve, elapsed)
    ck.done()
    return out


def _point(trainer: TopKTrainer, step: dict[str, Any]) -> dict[str, float]:
    """A loss-curve point as ``train_topk`` logs it (its ``log``; keep the two alike: a snapshot's record is the
    record a run of that budget writes)."""
    return {
        "step": trainer.steps,
        "tokens": trainer.tokens,
        "fvu": round(float(step["fvu"]), 6),
        "auxk": round(float(step["auxk"]), 6),
        "n_dead": trainer.n_dead(),
        "lr": trainer.lr_at(trainer.steps - 1),
    }


def _save(cache, layer, spec, params, trainer, curve, runtime_s, path, code) -> None:
    res = trainer.result(curve)

    def build(tmp: Path) -> dict[str, Any]:
        to_sae_lens(res, sae_metadata(cache, layer)).save_model(tmp)
        record = {**fast_record(res, spec, cache, runtime_s), "snapshot": True}
        write_json(tmp / RECORD, {**params, **record})
        return {"training_record": RECORD}

    cached_artifact(path, params, build, code=code, force=True)
