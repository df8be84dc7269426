"""What decides an SAE besides its data: :class:`SAESpec`, the registries of the architectures and trainers a spec
may name, the learning-rate rule and the SAE folder name.

Imports neither torch nor sae-lens: the parameter tables (every notebook's first cell) check names against these
registries before any slow import. The trainers themselves (the code that trains) are in
:mod:`rsae_utils.sae.trainers`, one per :data:`TRAINERS` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rsae_utils.errors import ParameterError

TOPK, RELU = "topk", "relu"
FAST, SAE_LENS = "fast", "sae-lens"


@dataclass(frozen=True)
class Architecture:
    """What differs per SAE architecture."""

    name: str
    label: str  # in figures and tables
    knob: str  # the SAESpec field that sets its sparsity
    # L0 is ``k`` by construction (TopK): no calibration, and its codes are k-sparse, so notebook 03 stores them
    # (rsae_utils.sae.codes) and a table's ``k`` column holds k. False: L0 follows from the L1 coefficient.
    fixed_l0: bool
    tag: Callable[[SAESpec], str]  # the sparsity part of an SAE folder name

    def check(self, spec: SAESpec, d_model: int) -> None:
        """ParameterError when ``spec``'s sparsity does not fit ``d_model`` (k must be below the latent count)."""
        n = spec.d_sae(d_model)
        if self.fixed_l0 and not 0 < spec.k < n:
            raise ParameterError(
                f"parameter 'k' must be in 1..{n - 1} (fewer than the {n} latents of R={spec.expansion} x "
                f"d_model={d_model}); got {spec.k}"
            )


ARCHITECTURES: dict[str, Architecture] = {
    TOPK: Architecture(TOPK, "TopK", "k", True, lambda s: f"k{s.k}"),
    # sae-lens's L1 term: sum over latents of |z| * ||W_dec row||
    RELU: Architecture(RELU, "ReLU + L1", "l1_coefficient", False, lambda s: f"l1{s.l1_coefficient:.6g}"),
}


@dataclass(frozen=True)
class TrainerKind:
    """What a trainer is, without its code (:mod:`rsae_utils.sae.trainers` holds that): the architectures it
    trains and whether it can train on activations streamed from the model (``train_from='stream'``)."""

    name: str
    architectures: tuple[str, ...]
    streams: bool
    description: str


TRAINERS: dict[str, TrainerKind] = {
    FAST: TrainerKind(
        FAST,
        (TOPK,),
        False,
        "rsae_utils.sae.topk: the paper's (sparsify's) rule, FVU + AuxK on raw activations, unit-norm decoder rows",
    ),
    SAE_LENS: TrainerKind(
        SAE_LENS,
        (TOPK, RELU),
        True,
        "sae-lens's SAETrainer (MSE on normalised inputs); MultiSAETrainer for streamed activations",
    ),
}


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """ParameterError naming the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ParameterError(f"parameter {name!r} must be one of {tuple(allowed)}; got {value!r}")


def check_trainer(trainer: str, architecture: str, streaming: bool = False) -> TrainerKind:
    """The kind of ``trainer`` after checking that both names are known, that it trains ``architecture`` and, with
    ``streaming``, that it trains from streamed activations; ParameterError naming the allowed values otherwise."""
    check_choice("architecture", architecture, list(ARCHITECTURES))
    check_choice("trainer", trainer, list(TRAINERS))
    kind = TRAINERS[trainer]
    if architecture not in kind.architectures:
        able = [t for t, k in TRAINERS.items() if architecture in k.architectures]
        labels = " and ".join(ARCHITECTURES[a].label for a in kind.architectures)
        raise ParameterError(
            f"parameter 'trainer' {trainer!r} trains {labels} SAEs only; with architecture {architecture!r} use "
            f"trainer {' or '.join(map(repr, able))}"
        )
    if streaming and not kind.streams:
        able = [t for t, k in TRAINERS.items() if k.streams]
        raise ParameterError(
            f"parameter 'trainer' {trainer!r} trains from the cache only; with train_from='stream' set trainer "
            f"{' or '.join(map(repr, able))} (its MultiSAETrainer trains every layer in lockstep)"
        )
    return kind


@dataclass(frozen=True)
class SAESpec:
    """Everything that decides an SAE besides its data. ``expansion`` is R: d_sae = R * d_model.

    The fields a sweep varies come first, so a spec reads positionally as (R, k, tokens, batch, lr, seed)."""

    expansion: int = 4
    k: int = 32  # TopK only
    n_tokens: int = 100_000  # training tokens (epochs over the cached train split when it has fewer)
    batch_size: int = 1024
    lr: float = 1e-3
    seed: int = 0
    architecture: str = TOPK  # a key of ARCHITECTURES
    trainer: str = SAE_LENS  # a key of TRAINERS
    l1_coefficient: float = 5.0  # ReLU only
    lr_warm_up_steps: int = 0
    # Seed of the batch order; None: ``seed`` (one seed fixes both). Set it to train SAEs that differ only in
    # their initialisation: same data, same order of batches (Paulo & Belrose 2025).
    data_seed: int | None = None
    # sae-lens scales inputs to mean norm sqrt(d_model) during training and folds the factor into the saved
    # weights, so one learning rate fits variants whose residual norms differ by orders of magnitude (the
    # paper's sparsify trainer gets the same invariance from its FVU loss).
    normalize_activations: str = "expected_average_only_in"
    # Steps without firing after which a latent counts as dead (TopK's auxiliary loss then trains it on the
    # residual). None: the window of DEAD_ACTIVATIONS expected activations per latent (:meth:`dead_tokens`).
    dead_feature_window: int | None = None
    log_every: int = 10  # steps between loss-curve points in the record
    # Token ids whose positions are left out of training (and of the metrics): the document-boundary token that
    # starts every window is an attention sink whose residual norm in a trained model is ~100x the others', so
    # it would dominate the reconstruction loss and the explained variance (sae-lens's evals exclude special
    # tokens for the same reason).
    exclude_tokens: tuple[int, ...] = ()
    # Train on only the cache's first that many training windows (None: all): fewer unique tokens, more epochs.
    train_windows: int | None = None
    # The fast trainer's encoder product: "float32", "bfloat16" (top-k chosen from a bf16 product, the chosen
    # activations exact in fp32; ~1.5x per step where the CPU has native bf16) or "auto" (bfloat16 where fast).
    matmul_dtype: str = "float32"

    @property
    def batch_seed(self) -> int:
        """The seed of the batch order: ``data_seed`` when set, else ``seed``."""
        return self.seed if self.data_seed is None else int(self.data_seed)

    @property
    def arch(self) -> Architecture:
        """This spec's entry of :data:`ARCHITECTURES` (ParameterError naming the allowed ones when unknown)."""
        check_choice("architecture", self.architecture, list(ARCHITECTURES))
        return ARCHITECTURES[self.architecture]

    def d_sae(self, d_model: int) -> int:
        return int(self.expansion) * int(d_model)

    def dead_window_steps(self, d_model: int) -> int:
        """The dead-latent window in whole steps: ``dead_feature_window``, else :meth:`dead_tokens` rounded up to
        whole batches (sae-lens counts its window in steps)."""
        if self.dead_feature_window is not None:
            return int(self.dead_feature_window)
        return -(-dead_window_tokens(self.d_sae(d_model), self.k) // self.batch_size)

    def dead_tokens(self, d_model: int) -> int:
        """Tokens without a positive activation after which a latent counts as dead: :meth:`dead_window_steps`
        whole batches (the window does not depend on the run's length: a snapshot of a longer run is the SAE a
        shorter run gives)."""
        return self.dead_window_steps(d_model) * self.batch_size

    def validate(self, d_model: int | None = None) -> None:
        """ParameterError (naming the allowed values) for an unknown architecture or trainer, a trainer that does
        not train this architecture, a sparsity that does not fit ``d_model``, or fewer tokens than one batch."""
        check_trainer(self.trainer, self.architecture)
        if self.expansion < 1:
            raise ParameterError(f"parameter 'expansion' must be >= 1; got {self.expansion}")
        if d_model is not None:
            self.arch.check(self, d_model)
        if self.n_tokens < self.batch_size:
            raise ParameterError(f"parameter 'n_tokens' must be >= batch_size ({self.batch_size}); got {self.n_tokens}")
        if self.train_windows is not None and (self.trainer != FAST or self.train_windows < 1):
            raise ParameterError(
                f"parameter 'train_windows' must be None or >= 1 with trainer {FAST!r}; got {self.train_windows} "
                f"with {self.trainer!r}"
            )


# sparsify's dead-latent window is 10M tokens; at the paper's SAE (d_sae = 64 x 512 = 32,768, k = 32) a latent firing
# at the average rate k / d_sae fires ~9,766 times in it. The window here is that many expected activations at any
# width and k: a latent is dead only after it missed ~10k chances to fire. (An eighth of the run, the earlier rule,
# declared latents dead after ~27 expected activations at 61k tokens and R = 16, so AuxK ran from the start and
# left 18% of latents dead on held-out tokens against 0.3% without it.) The rest of AuxK is sparsify 1.3.3's
# (sparse_coder.py: k_aux = d_in // 2, scale min(n_dead / k_aux, 1), auxk_alpha 1/32, the residual detached) with
# two differences, both Gao et al.'s: the dead latents' decoding has no b_dec (sparsify's decode adds it, so there
# AuxK also moves b_dec), and AuxK's gradient reaches the encoder (sparsify's fused encoder drops it).
DEAD_ACTIVATIONS = 10_000_000 * 32 // 32_768


def dead_window_tokens(d_sae: int, k: int, activations: int = DEAD_ACTIVATIONS) -> int:
    """Tokens in which a latent at the average firing rate ``k / d_sae`` fires ``activations`` times: the dead
    window of an SAE with ``d_sae`` latents and ``k`` active per token (a ReLU SAE: its target L0)."""
    if d_sae < 1 or k < 1:
        raise ParameterError(f"parameters 'd_sae' and 'k' must be >= 1; got {d_sae} and {k}")
    return -(-activations * d_sae // k)


def paper_lr(d_sae: int, lr_at_base: float = 2e-4, base_d_sae: int = 2**14) -> float:
    """sparsify's learning-rate rule, the paper's: ``lr_at_base / sqrt(d_sae / base_d_sae)`` (a wider SAE takes
    smaller steps); by default 2e-4 at 2**14 latents. With ``base_d_sae`` another width it carries a learning rate
    chosen at that width to ``d_sae`` (notebook 06's width sweep)."""
    return lr_at_base / math.sqrt(d_sae / base_d_sae)


# The parts an SAE folder name can hold, in the order they appear.
NAME_PARTS: dict[str, Callable[[SAESpec, int | None], str]] = {
    "layer": lambda s, layer: f"L{layer:02d}",
    "architecture": lambda s, layer: s.architecture,
    "R": lambda s, layer: f"R{s.expansion}",
    "sparsity": lambda s, layer: s.arch.tag(s),
    "seed": lambda s, layer: f"s{s.seed}",
    "data_seed": lambda s, layer: f"d{s.batch_seed}",
    "tokens": lambda s, layer: f"t{s.n_tokens}",
    "batch": lambda s, layer: f"b{s.batch_size}",
    "lr": lambda s, layer: f"lr{s.lr:.3g}",
}
# Which parts each use names (the names on disk stay as they were: notebook 06 finds notebook 03's SAEs by them).
NAME_STYLES: dict[str, tuple[str, ...]] = {
    "sae": ("layer", "architecture", "R", "sparsity", "seed"),  # notebook 03 (paths.sae_dir)
    "seed": ("layer", "architecture", "R", "sparsity", "seed", "data_seed", "tokens"),  # notebook 07's seed groups
    "sweep": ("R", "sparsity", "tokens", "batch", "lr", "seed"),  # notebook 06's TopK sweep (no layer)
}


def sae_name(layer: int | None, spec: SAESpec, prefix: str = "", style: str = "sae") -> str:
    """The folder name of the SAE of ``spec`` at ``layer``: ``prefix`` + the parts of ``NAME_STYLES[style]``
    joined by "-", e.g. ``L03-topk-R4-k32-s0`` (``paths.sae_dir`` puts it under its variant)."""
    check_choice("style", style, list(NAME_STYLES))
    return prefix + "-".join(NAME_PARTS[p](spec, layer) for p in NAME_STYLES[style])
