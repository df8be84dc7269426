"""Seed stability on synthetic data with known features (notebook 07's toy part): are the latents that several
seeds share the true features?

L1 SAEs (:mod:`rsae_utils.toys.mmcs`) are trained on one data stream per condition (``raw`` and ``mlp``: the same
sparse samples, the second through the random MLP), with the same batches for every seed; only the
initialisation differs. The reference seed's latents are matched to every other seed's
(:func:`rsae_utils.studies.seeds.stability.match_saes`), and each latent's best cosine with the condition's
ground-truth directions tells whether it recovered a true feature.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rsae_utils import store
from rsae_utils.sae.matching import unit_directions
from rsae_utils.studies.seeds.stability import alignment, match_saes
from rsae_utils.toys import mmcs, synthetic
from rsae_utils.toys.mmcs import TrainSpec, evaluate_one, max_cosines, torch_threads, train_batched
from rsae_utils.toys.synthetic import DataStream, SparseFeatureWorld, SyntheticSpec


def toy_seed_stability(
    world: SparseFeatureWorld,
    conditions: Sequence[str],
    dict_size: int,
    l1: float,
    seeds: Sequence[int],
    data_seed: int,
    spec: TrainSpec,
    threshold: float = 0.7,
    n_eval: int = 4096,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latents, seeds) tables. ``latents``: per latent of the first seed's SAE, per condition: whether it fires on
    held-out data, its alignment with each other seed, how many share it, and its best cosine with a true feature
    (``truth_cos``, decoder direction). ``seeds``: MMCS, L0, FVU and dead fraction of every SAE."""
    conditions, seeds = list(conditions), [int(s) for s in seeds]
    stream = DataStream(world, conditions, [int(data_seed)], spec.batch)  # one stream: every seed sees it
    groups = [ci for ci in range(len(conditions)) for _ in seeds]
    saes = train_batched(stream, groups, [float(l1)] * len(groups), seeds * len(conditions), int(dict_size), spec)
    lat, srows = [], []
    for ci, cond in enumerate(conditions):
        truth = world.ground_truth(cond)
        x_eval = stream.eval_batch(cond, n_eval)
        models = [saes.model(ci * len(seeds) + i) for i in range(len(seeds))]
        dirs = [unit_directions(w_enc, w_dec) for w_enc, _, w_dec in models]
        for s, (w_enc, b_enc, w_dec) in zip(seeds, models):
            srows.append(
                {
                    "condition": cond,
                    "seed": s,
                    "mmcs": mmcs.mmcs(w_dec, truth),
                    **evaluate_one(w_enc, b_enc, w_dec, x_eval),
                }
            )
        w_enc, b_enc, w_dec = models[0]
        fires = (torch.relu(x_eval @ w_enc + b_enc) > 0).any(0).numpy()
        df = pd.DataFrame(
            {
                "condition": cond,
                "latent": np.arange(dict_size),
                "alive": fires,
                "truth_cos": max_cosines(truth, w_dec).numpy(),
            }
        )  # best true feature per latent
        n_sharing = np.zeros(dict_size, dtype=int)
        for s, d in zip(seeds[1:], dirs[1:]):
            res = match_saes(dirs[0], d, threshold=threshold)
            df[f"align_s{s}"] = alignment(res)
            n_sharing += res.shared
        df["n_sharing"] = n_sharing
        df["shared_all"] = n_sharing == len(seeds) - 1
        lat.append(df)
    return pd.concat(lat, ignore_index=True), pd.DataFrame(srows)


def toy_summary(latents: pd.DataFrame, recovered: float = 0.9) -> pd.DataFrame:
    """Per condition and group of live latents (shared with every other seed / with some / with none): how many,
    their mean best cosine with a true feature, and the share above ``recovered`` (a recovered feature)."""
    live = latents[latents.alive].copy()
    n_other = live.filter(like="align_s").shape[1]
    live["group"] = np.where(
        live.n_sharing == n_other, "shared by all seeds", np.where(live.n_sharing > 0, "shared by some", "unshared")
    )
    g = live.groupby(["condition", "group"], sort=False)
    out = g.agg(
        latents=("latent", "size"),
        mean_truth_cos=("truth_cos", "mean"),
        recovered_fraction=("truth_cos", lambda c: float((c > recovered).mean())),
    ).reset_index()
    return out


def toy_from_params(params: dict, path: str | Path, threads: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or reuse) the toy experiment ``params`` describes, cached at ``path``. Keys: the ``SyntheticSpec``
    fields n_features, d_model, mean_active, decay, world_seed; conditions, dict_size, l1, seeds, data_seed,
    steps, lr, batch, threshold."""
    world_keys = ("n_features", "d_model", "mean_active", "decay", "world_seed")

    def build(tmp: Path) -> None:
        world = SparseFeatureWorld(SyntheticSpec(**{k: params[k] for k in world_keys}))
        spec = TrainSpec(steps=params["steps"], lr=params["lr"], batch=params["batch"], betas=(0.9, 0.99))
        with torch_threads(threads):
            lat, seeds = toy_seed_stability(
                world,
                params["conditions"],
                params["dict_size"],
                params["l1"],
                params["seeds"],
                params["data_seed"],
                spec,
                params["threshold"],
            )
        lat.to_csv(tmp / "latents.csv", index=False)
        seeds.to_csv(tmp / "seeds.csv", index=False)

    code = (
        sys.modules[__name__],
        mmcs,
        synthetic,
        "rsae_utils.studies.seeds.stability",
        "rsae_utils.sae.matching",
    )
    out = store.cached_artifact(path, dict(params), build, code=code)
    return pd.read_csv(out / "latents.csv"), pd.read_csv(out / "seeds.csv")
