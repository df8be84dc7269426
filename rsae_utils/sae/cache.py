"""Activation cache: the on-disk format, opening and verifying it (written by :mod:`rsae_utils.sae.harvest`).

Layout of a cache folder::

    tokens.safetensors           "train"/"test": LongTensor (n_windows, ctx), written first
    shard-train-00000.safetensors  one tensor per layer, "blocks.{L}.hook_resid_post": (windows, ctx, d_model)
    shard-train-00001.safetensors  ...
    shard-test-00000.safetensors
    manifest.json                key, parameters, per-shard sha256 + bytes, provenance; rewritten after every shard

The control variant's embeddings are fresh noise on every forward; that noise is part of what is cached, so
training, metrics and auto-interp all see the same noisy-embedding activations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from rsae_utils.errors import CacheError, StageError
from rsae_utils.repro import stable_hash
from rsae_utils.store import file_record, note_artifact, read_json

MANIFEST = "manifest.json"
TOKENS_FILE = "tokens.safetensors"
FORMAT = "rsae-activation-cache/1"
SPLITS = ("train", "test")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Largest magnitude stored as float16 without overflow (the format's max is 65504); bigger raises.
FP16_MAX = 6.5e4
_REBUILD = "rerun notebook 03 (make figures NB=03 FORCE=1): its cache stage rebuilds what is damaged"
# The forward that made a cache, as recorded in its manifest: transformer-lens's, or rsae_utils.sae.fastfwd's.
TL_FORWARD = "transformer-lens"
# Windows per shard file: small enough that an interruption loses little, large enough to keep files few.
DEFAULT_SHARD_WINDOWS = 64


def hook_name(layer: int) -> str:
    """The residual stream after block ``layer`` (what the paper's SAEs read)."""
    return f"blocks.{layer}.hook_resid_post"


def shard_name(split: str, index: int) -> str:
    """The file name of shard ``index`` of ``split`` (the harvest writes it, the manifest records it)."""
    return f"shard-{split}-{index:05d}.safetensors"


def tokens_digest(tokens: torch.Tensor) -> str:
    """sha256 of a token tensor's bytes: the cache key and manifest name the exact windows by it."""
    return hashlib.sha256(tokens.contiguous().numpy().tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------
@dataclass
class ActivationCache:
    """A finished cache folder. ``tokens(split)``, ``acts(layer, split)`` and ``iter_batches`` read it."""

    root: Path
    manifest: dict[str, Any]
    _resident: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict, repr=False)

    # --- description ---
    @property
    def layers(self) -> list[int]:
        return list(self.manifest["layers"])

    @property
    def ctx(self) -> int:
        return int(self.manifest["ctx"])

    @property
    def d_model(self) -> int:
        return int(self.manifest["d_model"])

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    def n_windows(self, split: str = "train") -> int:
        return int(self.manifest["n_windows"][self._split(split)])

    def n_tokens(self, split: str = "train") -> int:
        return self.n_windows(split) * self.ctx

    def _split(self, split: str) -> str:
        if split not in self.manifest["n_windows"]:
            raise KeyError(f"split {split!r} not in cache {self.root}; has {list(self.manifest['n_windows'])}")
        return split

    def _layer(self, layer: int) -> int:
        if layer not in self.layers:
            raise KeyError(f"layer {layer} not in cache {self.root}; has {self.layers}")
        return layer

    def _shards(self, split: str) -> list[dict[str, Any]]:
        return [s for s in self.manifest["shards"] if s["split"] == split]

    # --- data ---
    def tokens(self, split: str = "train") -> torch.Tensor:
        """LongTensor (n_windows, ctx): the token ids the activations were computed from."""
        with safe_open(self.root / TOKENS_FILE, framework="pt") as fh:
            return fh.get_tensor(self._split(split))

    def shard_acts(self, layer: int, split: str, index: int) -> torch.Tensor:
        """One shard of one layer, float32 (windows, ctx, d_model)."""
        shard = self._shards(self._split(split))[index]
        with safe_open(self.root / shard["file"], framework="pt") as fh:
            return fh.get_tensor(hook_name(self._layer(layer))).float()

    def acts(self, layer: int, split: str = "train", n_windows: int | None = None) -> torch.Tensor:
        """FloatTensor (n_windows, ctx, d_model) of ``blocks.{layer}.hook_resid_post``, as float32. ``n_windows``:
        only the split's first that many, reading only the shards that hold them (a long study's quarter of a
        9.7 GB split need not load the rest)."""
        key = (self._layer(layer), self._split(split))
        if key in self._resident:
            return self._resident[key] if n_windows is None else self._resident[key][:n_windows]
        shards = self._shards(split)
        idx = [i for i, sh in enumerate(shards) if n_windows is None or sh["windows"][0] < n_windows]
        parts = [self.shard_acts(layer, split, i) for i in idx]
        out = torch.cat(parts) if parts else torch.empty(0, self.ctx, self.d_model)
        return out if n_windows is None else out[:n_windows]

    def iter_batches(
        self,
        layer: int,
        batch_size: int,
        *,
        split: str = "train",
        seed: int = 0,
        buffer_tokens: int = 1 << 20,
        exclude_tokens: Sequence[int] = (),
        n_windows: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Endless iterator of shuffled float32 (batch_size, d_model) rows of one layer.

        Epoch after epoch: shards in a seeded random order, ``buffer_tokens`` worth loaded at a time, rows
        shuffled inside the buffer (a split that fits in the buffer is loaded once and fully reshuffled every
        epoch). Positions holding a token of ``exclude_tokens`` are left out. The same ``seed`` gives the same
        sequence of batches. ``n_windows``: only the split's first that many windows (fewer unique tokens, more
        epochs: what repetition costs); they must fit in the buffer.
        """
        gen = torch.Generator().manual_seed(int(seed))
        shards = self._shards(self._split(split))
        if not shards:
            raise CacheError(f"{self.root}: split {split!r} has no windows")
        total = self.n_tokens(split)
        keep = token_mask(self.tokens(split), exclude_tokens).reshape(-1)
        resident = None
        if n_windows is not None:
            n = int(n_windows)
            if not 0 < n <= self.n_windows(split) or n * self.ctx > buffer_tokens:
                raise CacheError(
                    f"parameter 'n_windows' must be in 1..{self.n_windows(split)} and fit the buffer "
                    f"({buffer_tokens // self.ctx} windows); got {n_windows}"
                )
            rows = self.acts(layer, split, n_windows=n).reshape(-1, self.d_model)
            resident = rows[keep[: n * self.ctx]]
        elif total <= buffer_tokens:
            resident = self.acts(layer, split).reshape(-1, self.d_model)[keep]
        carry = torch.empty(0, self.d_model)
        while True:
            if resident is not None:
                groups: Iterable[torch.Tensor] = [resident]
            else:
                order = torch.randperm(len(shards), generator=gen).tolist()
                per = max(1, buffer_tokens // (shards[0]["windows"][1] - shards[0]["windows"][0]) // self.ctx)
                # loaded one buffer at a time, as it is reached (an epoch of a 4M-token split is 9.7 GB)
                groups = (self.shard_rows(layer, split, order[i : i + per], keep) for i in range(0, len(order), per))
            for group in groups:
                rows = group[torch.randperm(group.shape[0], generator=gen)]
                if carry.shape[0]:
                    rows = torch.cat([carry, rows])
                n_full = rows.shape[0] // batch_size
                for b in range(n_full):
                    yield rows[b * batch_size : (b + 1) * batch_size]
                carry = rows[n_full * batch_size :]

    def n_shards(self, split: str = "train") -> int:
        return len(self._shards(self._split(split)))

    def shard_rows(self, layer: int, split: str, indices: Sequence[int], keep: torch.Tensor) -> torch.Tensor:
        """The rows (tokens, d_model) of shards ``indices``, in that order, where ``keep`` (the split's tokens,
        flattened) holds."""
        shards, parts = self._shards(self._split(split)), []
        for i in indices:
            lo, hi = (w * self.ctx for w in shards[i]["windows"])
            parts.append(self.shard_acts(layer, split, i).reshape(-1, self.d_model)[keep[lo:hi]])
        return torch.cat(parts)

    def keep_in_memory(self, layer: int, split: str = "test") -> torch.Tensor:
        """Load one (layer, split) once and serve later ``acts`` calls from memory."""
        key = (self._layer(layer), self._split(split))
        if key not in self._resident:
            self._resident[key] = self.acts(layer, split)
        return self._resident[key]

    def verify(self, check_hash: bool = True) -> list[str]:
        """Names of files (shards, the tokens) that are missing or do not match their recorded size (and sha256)."""
        records = list(self.manifest["shards"])
        if isinstance(self.manifest.get("tokens_file"), Mapping):
            records.append(self.manifest["tokens_file"])
        return [rec["file"] for rec in records if not shard_ok(self.root, rec, check_hash)]

    def manifest_hash(self) -> str:
        """A short hash of what this cache holds (key + shard hashes): SAEs trained on it are keyed by it."""
        return stable_hash({"key": self.manifest["key"], "shards": [s["sha256"] for s in self.manifest["shards"]]})

    def content_id(self) -> str:
        """:meth:`manifest_hash` plus the hash of the token file: what is derived from both activations and tokens
        (latent records, stored TopK codes) is keyed by it."""
        tokens = self.manifest.get("tokens_file", {}).get("sha256")
        return stable_hash({"cache": self.manifest_hash(), "tokens": tokens})


def token_mask(tokens: torch.Tensor, exclude_tokens: Sequence[int] = ()) -> torch.Tensor:
    """Bool mask (same shape as ``tokens``): True where the token is not one of ``exclude_tokens``."""
    if not len(exclude_tokens):
        return torch.ones_like(tokens, dtype=torch.bool)
    return ~torch.isin(tokens, torch.as_tensor(list(exclude_tokens), dtype=tokens.dtype))


def shard_ok(root: Path, shard: Mapping[str, Any], check_hash: bool) -> bool:
    """True when the file a manifest record names is there with its recorded size (and sha256, with ``check_hash``)."""
    path = root / shard["file"]
    if not path.exists() or path.stat().st_size != shard["bytes"]:
        return False
    return not check_hash or file_record(path)["sha256"] == shard["sha256"]


def read_manifest(root: Path) -> dict[str, Any]:
    """The cache manifest at ``root``; CacheError naming the file when it is missing, unreadable or not one."""
    path = root / MANIFEST
    if not path.exists():
        raise CacheError(f"{root}: no activation cache here (no {MANIFEST})")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as err:
        raise CacheError(f"{path}: unreadable cache manifest ({type(err).__name__}: {err}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CacheError(f"{path}: not an activation cache manifest of format {FORMAT}; {_REBUILD}")
    if not isinstance(manifest.get("shards", []), list):
        raise CacheError(f"{path}: cache manifest without a list of shards; {_REBUILD}")
    return manifest


def open_cache(path: str | Path, check_hash: bool = True) -> ActivationCache:
    """Open a finished cache; CacheError (naming the file) if it is incomplete or a file does not match its manifest.

    Sizes and sha256 of every shard and of the tokens are checked (each file is hashed once per process, see
    ``store.file_sha256``); ``check_hash=False`` checks sizes only (for a producer about to redo what is damaged).
    """
    root = Path(path)
    manifest = read_manifest(root)
    if not manifest.get("complete"):
        raise CacheError(f"{root}: harvest did not finish; rerun harvest() with the same parameters to resume")
    cache = ActivationCache(root, manifest)
    try:
        bad = cache.verify(check_hash=check_hash)
    except (KeyError, TypeError) as err:
        raise CacheError(f"{root / MANIFEST}: malformed shard record ({type(err).__name__}: {err})") from None
    if bad:
        raise CacheError(
            f"{root}: files damaged or missing (size or sha256 differs from {MANIFEST}): {bad}; {_REBUILD}"
        )
    note_artifact(root)
    return cache


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------
def cache_key(
    meta: Mapping[str, Any],
    layers: Sequence[int],
    tokens_by_split: Mapping[str, torch.Tensor],
    dtype: str,
    shard_windows: int,
    forward: str | None = None,
) -> str:
    """What decides the cache's content: model, variant, seed, corpus, the exact tokens, layers, dtype, sharding,
    and the variant's options when it has any (``meta["variant_options"]``: e.g. norm gains kept, a scaled
    embedding; absent or empty for the variants as notebook 03 makes them, whose keys it leaves unchanged).
    ``forward`` names the code that computed the activations when it is not transformer-lens's own forward
    (e.g. ``"lean-float32"``, see :mod:`rsae_utils.sae.fastfwd`): its numbers differ in the last bits (bfloat16:
    more), so its caches get keys of their own; transformer-lens caches keep the keys they always had."""
    fields = ("model", "variant", "seed", "corpus_sha256", "revision")
    fields += ("variant_options",) if meta.get("variant_options") else ()
    return stable_hash(
        {
            "meta": {k: meta.get(k) for k in fields},
            "layers": sorted(layers),
            "tokens": {s: tokens_digest(t) for s, t in sorted(tokens_by_split.items())},
            "dtype": dtype,
            "shard_windows": shard_windows,
            "format": FORMAT,
            **({"forward": forward} if forward and forward != TL_FORWARD else {}),
        }
    )


def is_complete(path: str | Path, key: str | None = None) -> bool:
    """True when ``path`` holds a finished cache (with ``key``, when given) whose files all match their sha256."""
    try:
        cache = open_cache(path, check_hash=True)
    except CacheError:
        return False
    return key is None or cache.manifest.get("key") == key


def require_caches(
    pipeline: Any, variants: Sequence[str], layers: Sequence[int], profile: str, reader: str, *, plain: bool = False
) -> dict[str, ActivationCache]:
    """Notebook 03's caches of ``variants`` for a later notebook (``reader``, e.g. "07"), opened through
    ``pipeline.cache`` and never harvested: each must hold ``layers`` and a cached training split and, with
    ``plain``, be made without variant options (notebook 06's baseline). StageError naming notebook 03 otherwise."""
    run03 = f"run notebook 03_sae_training (profile {profile!r})"
    out = {}
    for v in variants:
        try:
            cache = pipeline.cache(v)
        except StageError as err:
            raise StageError(f"notebook {reader} reads notebook 03's activation caches: {run03} first; {err}") from None
        missing = [x for x in layers if x not in cache.layers]
        if missing or "train" not in cache.manifest["n_windows"]:
            raise StageError(
                f"the cache of {v!r} ({cache.root}) has layers {cache.layers} and splits "
                f"{list(cache.manifest['n_windows'])}; notebook {reader} needs layers {list(layers)} with a cached "
                f"training split: {run03} with them and train_from='cache'"
            )
        if plain and cache.manifest.get("variant_options"):
            raise StageError(
                f"the cache of {v!r} was made with variant options {cache.manifest['variant_options']}; "
                f"notebook {reader}'s baseline is notebook 03 with rerandomize_norms=True, embedding_scale=1.0"
            )
        out[v] = cache
    return out
