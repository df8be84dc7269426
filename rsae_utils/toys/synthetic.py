"""Synthetic sparse data with known ground-truth features (after Sharkey et al. 2022), for the MMCS sweep.

A *world* fixes ``n_features`` (G) unit feature directions in ``d_model`` (h) dimensions, a random correlation
matrix between features, the decaying feature frequencies, a random 2-layer ReLU MLP and the calibration of the
three data conditions:

``raw``
    ``x = sum_i a_i f_i``: per sample, ``alpha ~ N(0, Sigma)`` with ``Sigma`` a random correlation matrix
    (``A A^T`` rescaled to unit diagonal), ``p_i = Phi(alpha_i) * lambda**i * c`` with ``lambda = 0.99`` and ``c``
    chosen so that ``E[sum_i p_i] = mean_active`` (5); feature ``i`` is active with probability ``p_i`` and then has
    magnitude ``a_i ~ U[0, 1)``.

    Decay: PAPER.md writes the decay as ``p_i <- p_i^(lambda i)``. Read literally (an exponent), every feature past
    index ~20 would have probability below 1e-6, so no dictionary could ever reach MMCS near 1 over 512 features;
    the Sharkey et al. construction multiplies by ``lambda**i`` (frequencies decaying geometrically with index),
    which is what we implement.

``mlp``
    The raw data through a random 2-layer ReLU MLP at initialisation (hidden ``4 h``; weights and biases drawn as
    PyTorch's ``nn.Linear`` default does, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), minus ``MLP(0)`` (the output
    for an empty input, standing in for the decoder bias our SAE lacks), rescaled by one scalar so the mean
    squared norm matches the raw data (so one L1 axis serves every condition). Its ground-truth directions are
    each feature's image through the network on its own, averaged over the active magnitudes:
    ``normalize(mean_a [MLP(a f_i) - MLP(0)])``.

``gaussian``
    The control: independent Gaussian noise with the raw data's per-dimension mean and standard deviation. It
    has no features; MMCS is scored against the raw directions (chance level for a random dictionary).

Sampling is vectorised and driven by explicit ``torch.Generator`` objects, so the same seeds give the same batches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

CONDITIONS = ("raw", "mlp", "gaussian")

# Offsets that give each random stream of one seed its own torch.Generator.
_STREAM_RAW, _STREAM_GAUSS, _WORLD, _CALIB = 11, 23, 101, 211
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic world (everything but the per-run sampling seeds)."""

    n_features: int = 512
    d_model: int = 256
    mean_active: float = 5.0
    decay: float = 0.99
    mlp_ratio: int = 4
    correlated: bool = True
    world_seed: int = 0
    n_calib: int = 16384

    def to_dict(self) -> dict:
        return asdict(self)


def seeded_generator(*parts: int) -> torch.Generator:
    """A generator seeded from a tuple of small integers (stable across processes)."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def _linear_default_init(fan_in: int, fan_out: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (fan_in, fan_out) and bias as ``nn.Linear`` initialises them: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
    return w, b


class RandomMLP:
    """A 2-layer ReLU MLP at initialisation (PyTorch nn.Linear default init), used as a fixed random map."""

    def __init__(self, d_in: int, d_hidden: int, gen: torch.Generator, d_out: int | None = None):
        self.w1, self.b1 = _linear_default_init(d_in, d_hidden, gen)
        self.w2, self.b2 = _linear_default_init(d_hidden, d_out or d_in, gen)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2


class SparseFeatureWorld:
    """Ground-truth features, frequencies, correlations, the random MLP and the per-condition calibration."""

    def __init__(self, spec: SyntheticSpec | None = None, **kwargs):
        spec = spec or SyntheticSpec(**kwargs)
        self.spec = spec
        G, h = spec.n_features, spec.d_model
        gen = seeded_generator(_WORLD, spec.world_seed)
        # Unit feature directions: Gaussian vectors normalised (rows of ``directions``).
        d = torch.randn(G, h, generator=gen)
        self.directions = d / d.norm(dim=1, keepdim=True)
        # Correlation: Sigma = A A^T rescaled to unit diagonal; alpha = (A eps) / ||A_i|| has exactly that law,
        # so no Cholesky factor is needed.
        a = torch.randn(G, G, generator=gen)
        self.mixing = (a / a.norm(dim=1, keepdim=True)).T.contiguous() if spec.correlated else None
        # Frequencies: E[Phi(alpha_i)] = 1/2 for a standard-normal marginal, so E[sum p_i] = c/2 * sum lambda^i
        # (without correlations p_i = c lambda^i directly).
        decay = spec.decay ** torch.arange(G, dtype=torch.float32)
        self.prob_scale = float(spec.mean_active / ((0.5 if spec.correlated else 1.0) * decay.sum()))
        self.decay = decay * self.prob_scale
        if float(self.decay.max()) > 1.0:
            raise ValueError("mean_active is too large for this decay: a feature probability would exceed 1")
        self.mlp = RandomMLP(h, spec.mlp_ratio * h, gen)
        self.mlp_zero = self.mlp(torch.zeros(1, h))[0]
        # Calibration set (its own stream): scales and moments the conditions are defined with.
        _, x = self.sample_raw(spec.n_calib, seeded_generator(_CALIB, spec.world_seed))
        raw_ms = float(x.pow(2).sum(1).mean())
        y = self.mlp(x) - self.mlp_zero
        self.mlp_scale = math.sqrt(raw_ms / float(y.pow(2).sum(1).mean()))
        self.raw_mean = x.mean(0)
        self.raw_std = x.std(0)

    # ----------------------------------------------------------------------------------------------------------
    def marginal_probs(self) -> torch.Tensor:
        """Exact per-feature activation probability E[p_i] (decaying with the index)."""
        return 0.5 * self.decay if self.spec.correlated else self.decay

    def sample_codes(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """(batch, G) sparse non-negative feature coefficients."""
        G = self.spec.n_features
        if self.mixing is not None:
            eps = torch.randn(batch, G, generator=gen)
            alpha = eps @ self.mixing
            # Phi via erf: torch.special.ndtr is several times slower on CPU.
            p = torch.erf(alpha.mul_(_INV_SQRT2)).add_(1.0).mul_(0.5 * self.decay)
        else:
            p = self.decay.expand(batch, G)
        # One uniform per entry does both jobs: given u < p_i, u / p_i is again U[0, 1) and independent of the
        # event, so it serves as the magnitude (saves a second (batch, G) draw).
        u = torch.rand(batch, G, generator=gen)
        return torch.where(u < p, u / p, torch.zeros(()))

    def sample_raw(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.sample_codes(batch, gen)
        return codes, codes @ self.directions

    def mlp_transform(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mlp(x) - self.mlp_zero) * self.mlp_scale

    def gaussian(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        return self.raw_mean + self.raw_std * torch.randn(batch, self.spec.d_model, generator=gen)

    def ground_truth(self, condition: str) -> torch.Tensor:
        """(G, h) unit directions the SAE's dictionary is scored against under ``condition``."""
        check_condition(condition)
        if condition != "mlp":
            return self.directions
        if not hasattr(self, "_mlp_truth"):
            # Average each feature's isolated image over the magnitudes it takes when active (a ~ U[0, 1)).
            mags = (torch.arange(16, dtype=torch.float32) + 0.5) / 16
            inp = self.directions[:, None, :] * mags[None, :, None]
            img = self.mlp_transform(inp.reshape(-1, self.spec.d_model)).reshape(self.spec.n_features, 16, -1)
            g = img.mean(1)
            self._mlp_truth = g / g.norm(dim=1, keepdim=True)
        return self._mlp_truth


def check_condition(condition: str) -> None:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")


class DataStream:
    """Fresh batches for several (condition, seed) groups at once: ``next()`` -> (n_groups, batch, h).

    Groups are ordered condition-major: ``[(c, s) for c in conditions for s in seeds]``. Each seed owns two
    generators (one for the sparse samples that ``raw`` and ``mlp`` share, one for the Gaussian control), so the
    batch of group ``(c, s)`` at step ``t`` does not depend on which other groups are drawn alongside it: a stream
    of one group replays exactly the data that group saw in a bigger stream.
    """

    def __init__(self, world: SparseFeatureWorld, conditions: list[str], seeds: list[int], batch: int):
        for c in conditions:
            check_condition(c)
        self.world, self.conditions, self.seeds, self.batch = world, list(conditions), list(seeds), batch
        self.d_model = world.spec.d_model  # what the trainer reads (toys.frontier's row stream has it too)
        self.groups = [(c, s) for c in self.conditions for s in self.seeds]
        need_sparse = any(c in ("raw", "mlp") for c in conditions)
        need_gauss = "gaussian" in conditions
        ws = world.spec.world_seed
        self._raw_gens = {s: seeded_generator(_STREAM_RAW, ws, s) for s in seeds} if need_sparse else {}
        self._gauss_gens = {s: seeded_generator(_STREAM_GAUSS, ws, s) for s in seeds} if need_gauss else {}

    def next(self) -> torch.Tensor:
        per_seed_raw = {s: self.world.sample_raw(self.batch, g)[1] for s, g in self._raw_gens.items()}
        out = []
        for c, s in self.groups:
            if c == "raw":
                out.append(per_seed_raw[s])
            elif c == "mlp":
                out.append(self.world.mlp_transform(per_seed_raw[s]))
            else:
                out.append(self.world.gaussian(self.batch, self._gauss_gens[s]))
        return torch.stack(out)

    def eval_batch(self, condition: str, n: int, seed: int = 10_000) -> torch.Tensor:
        """A held-out batch of ``condition`` from its own stream (not the training stream)."""
        check_condition(condition)
        ws = self.world.spec.world_seed
        if condition == "gaussian":
            return self.world.gaussian(n, seeded_generator(_STREAM_GAUSS, ws, seed, 7))
        x = self.world.sample_raw(n, seeded_generator(_STREAM_RAW, ws, seed, 7))[1]
        return x if condition == "raw" else self.world.mlp_transform(x)
