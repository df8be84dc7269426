"""A fast-trainer run that survives interruption: its whole state saved now and then, and picked up exactly.

Why: the training-budget study's ``long`` profile trains each (variant, layer) for 16.8M tokens, ~25 min here, and
a whole study run takes longer than one sitting. A restart that begins again at token 0 loses up to a run; one
that resumes from the last checkpoint loses at most ``every_s`` seconds. The state is everything
:class:`~rsae_utils.sae.topk.TopKTrainer` carries from step to step (weights, Adam's moments and step counts, the
dead-latent counters, step and token counts) plus the caller's loss curve and elapsed time; the batches are replayed
from their seeded iterator up to the step reached, so the resumed run sees the same batches and ends bit-equal
to an uninterrupted one (a test checks it). A checkpoint carries the run's artifact key: one written by other
parameters or other code is ignored, and one that cannot be read is reported and ignored, never half-used.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rsae_utils.sae.topk import TopKTrainer
from rsae_utils.store import atomic_torch_save

__all__ = ["Checkpointer", "load_checkpoint", "restore", "trainer_state"]

FORMAT = 1


def trainer_state(trainer: TopKTrainer) -> dict[str, Any]:
    """Everything a step of ``trainer`` reads that an earlier step wrote (copies, on the CPU)."""
    return {
        "params": {n: trainer.p[n].detach().cpu().clone() for n in trainer.trained},
        "opt": trainer.opt.state_dict(),
        "since_fired": trainer.since_fired.cpu().clone(),
        "steps": trainer.steps,
        "tokens": trainer.tokens,
        "seconds": trainer.seconds,
    }


@torch.no_grad()
def restore(trainer: TopKTrainer, state: dict[str, Any]) -> None:
    """Put ``state`` (from :func:`trainer_state`) into a freshly built ``trainer`` of the same shape, in place: the
    optimizer keeps pointing at the same tensors, and the bf16 copy of the encoder is refreshed."""
    for n in trainer.trained:
        trainer.p[n].copy_(state["params"][n])
    trainer.opt.load_state_dict(state["opt"])
    trainer.since_fired.copy_(state["since_fired"])
    trainer.steps, trainer.tokens, trainer.seconds = int(state["steps"]), int(state["tokens"]), float(state["seconds"])
    if "enc_bf16" in trainer.p:
        trainer.p["enc_bf16"].copy_(trainer.p["enc"])


def load_checkpoint(path: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it was written for ``key``; None when there is none, it is another run's, or
    it cannot be read (then with a warning naming the file)."""
    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - a torn or foreign file: start over rather than fail the study
        warnings.warn(f"{path}: unreadable training checkpoint ({err!r}); the run starts from token 0", stacklevel=2)
        return None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or ck.get("key") != key:
        return None
    return ck


class Checkpointer:
    """Saves a run's state to ``path`` at most every ``every_s`` seconds (atomically), and resumes from it.

    ``every_s`` None never saves (a short run: the checkpoint would cost more than it spares); 0 saves after every
    step (tests)."""

    def __init__(self, path: Path, key: str, every_s: float | None = 600.0):
        self.path, self.key, self.every_s = Path(path), key, every_s
        self._last = time.monotonic()

    def resume(
        self, trainer: TopKTrainer, batches: Iterator[Any], before_tokens: int
    ) -> tuple[Iterator[Any], list[dict[str, float]], float]:
        """Restore ``trainer`` from the checkpoint, if one matches and stands before ``before_tokens`` (the first
        budget still to save), and skip the batches it had seen. Returns the batches left, the loss curve so far
        and the run's earlier elapsed seconds (0 and [] when starting anew)."""
        ck = load_checkpoint(self.path, self.key) if self.every_s is not None else None
        if ck is None or int(ck["trainer"]["tokens"]) >= before_tokens:
            return batches, [], 0.0
        restore(trainer, ck["trainer"])
        for _ in itertools.islice(batches, trainer.steps):  # replay the seeded order up to where the run stood
            pass
        return batches, list(ck["curve"]), float(ck["elapsed_s"])

    def maybe_save(self, trainer: TopKTrainer, curve: list[dict[str, float]], elapsed_s: float) -> bool:
        if self.every_s is None or time.monotonic() - self._last < self.every_s:
            return False
        state = {"format": FORMAT, "key": self.key, "trainer": trainer_state(trainer)}
        atomic_torch_save({**state, "curve": list(curve), "elapsed_s": float(elapsed_s)}, self.path)
        self._last = time.monotonic()
        return True

    def done(self) -> None:
        """The run finished and its snapshots are stored: the checkpoint has no further use."""
        self.path.unlink(missing_ok=True)
