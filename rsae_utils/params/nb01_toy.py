"""Parameters of notebook 01_toy_superposition."""

from __future__ import annotations

from rsae_utils.errors import ParameterError
from rsae_utils.params.core import Config, Notebook, Param, is_float, is_int, register


def _check_01(cfg: Config) -> None:
    if cfg.n_dense >= cfg.n_sparse:
        raise ParameterError(
            f"parameter 'n_dense' must be < n_sparse ({cfg.n_sparse}) for superposition; got {cfg.n_dense}"
        )


register(
    "01_toy_superposition",
    Notebook(
        title="Toy superposition: sparse features through a random MLP",
        params=[
            Param("n_samples", 2000, 10_000, 10_000, is_int(100, 10_000_000), "samples of the sparse features"),
            Param("n_sparse", 3, 3, 3, is_int(2, 64), "number of sparse Lomax features (n_s)"),
            Param("n_dense", 2, 2, 2, is_int(1, 63), "dense dimension they are projected to (n_d)"),
            Param("hidden_mult", 4, 4, 4, is_int(1, 64), "MLP hidden width = hidden_mult x n_dense"),
            Param("seed", 7, 7, 7, is_int(0, 2**31 - 1), "seed of the data, D and the MLP shown in the figure"),
            Param("top_share", 0.1, 0.1, 0.1, is_float(0.001, 1.0), "share of farthest samples the ray statistics use"),
            Param("angle_deg", 5.0, 5.0, 5.0, is_float(0.1, 90.0), "window (degrees) of the near-ray share"),
            Param("n_repeats", 5, 20, 50, is_int(1, 10_000), "seeds 0..n_repeats-1 for the robustness table"),
        ],
        checks=[_check_01],
    ),
)
