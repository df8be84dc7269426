"""Activation cache: one model pass per variant, every requested layer, written in verified shards.

Layout of a cache folder::

    tokens.safetensors           "train"/"test": LongTensor (n_windows, ctx), written first
    shard-train-00000.safetensors  one tensor per layer, "blocks.{L}.hook_resid_post": (windows, ctx, d_model)
    shard-train-00001.safetensors  ...
    shard-test-00000.safetensors
    manifest.json                key, parameters, per-shard sha256 + bytes, provenance; rewritten after every shard

The forward pass stops after the deepest requested layer (``stop_at_layer``), so a cache of layers 0..14 of a
30-layer model costs half a forward. A harvest that is interrupted keeps its finished shards: rerunning it with
the same parameters checks each recorded shard (size and sha256) and recomputes only the missing or damaged ones.
Each shard's forward runs under its own seed, so a resumed cache is bit-identical to an uninterrupted one, even
for the control variant whose embeddings are fresh noise on every forward (the noise is part of what is cached:
training, metrics and auto-interp all see the same noisy-embedding activations).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from safetensors.torch import save_file as st_save_file

from rsae_utils.profiles import ParameterError
from rsae_utils.repro import provenance, stable_hash
from rsae_utils.store import atomic_write_bytes, file_record, read_json, write_json

MANIFEST = "manifest.json"
TOKENS_FILE = "tokens.safetensors"
FORMAT = "rsae-activation-cache/1"
SPLITS = ("train", "test")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Largest magnitude stored as float16 without overflow (the format's max is 65504); bigger raises.
_FP16_MAX = 6.5e4
# Windows per shard file: small enough that an interruption loses little, large enough to keep files few.
DEFAULT_SHARD_WINDOWS = 64


class CacheError(RuntimeError):
    """A cache folder is missing, incomplete, damaged or was made with other parameters."""


def hook_name(layer: int) -> str:
    """The residual stream after block ``layer`` (what the paper's SAEs read)."""
    return f"blocks.{layer}.hook_resid_post"


def _shard_name(split: str, index: int) -> str:
    return f"shard-{split}-{index:05d}.safetensors"


def _tokens_digest(tokens: torch.Tensor) -> str:
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

    def acts(self, layer: int, split: str = "train") -> torch.Tensor:
        """FloatTensor (n_windows, ctx, d_model) of ``blocks.{layer}.hook_resid_post``, as float32."""
        key = (self._layer(layer), self._split(split))
        if key in self._resident:
            return self._resident[key]
        parts = [self.shard_acts(layer, split, i) for i in range(len(self._shards(split)))]
        return torch.cat(parts) if parts else torch.empty(0, self.ctx, self.d_model)

    def iter_batches(
        self,
        layer: int,
        batch_size: int,
        *,
        split: str = "train",
        seed: int = 0,
        buffer_tokens: int = 1 << 20,
        exclude_tokens: Sequence[int] = (),
    ) -> Iterator[torch.Tensor]:
        """Endless iterator of shuffled float32 (batch_size, d_model) rows of one layer.

        Epoch after epoch: shards in a seeded random order, ``buffer_tokens`` worth loaded at a time, rows
        shuffled inside the buffer (a split that fits in the buffer is loaded once and fully reshuffled every
        epoch). Positions holding a token of ``exclude_tokens`` are left out. The same ``seed`` gives the same
        sequence of batches.
        """
        gen = torch.Generator().manual_seed(int(seed))
        shards = self._shards(self._split(split))
        if not shards:
            raise CacheError(f"{self.root}: split {split!r} has no windows")
        total = self.n_tokens(split)
        keep = token_mask(self.tokens(split), exclude_tokens).reshape(-1)
        resident = None
        if total <= buffer_tokens:
            resident = self.acts(layer, split).reshape(-1, self.d_model)[keep]
        carry = torch.empty(0, self.d_model)
        while True:
            if resident is not None:
                groups: list[torch.Tensor] = [resident]
            else:
                order = torch.randperm(len(shards), generator=gen).tolist()
                groups = []
                per = max(1, buffer_tokens // (shards[0]["windows"][1] - shards[0]["windows"][0]) // self.ctx)
                for start in range(0, len(order), per):
                    parts = []
                    for i in order[start : start + per]:
                        lo, hi = (w * self.ctx for w in shards[i]["windows"])
                        parts.append(self.shard_acts(layer, split, i).reshape(-1, self.d_model)[keep[lo:hi]])
                    groups.append(torch.cat(parts))
            for group in groups:
                rows = group[torch.randperm(group.shape[0], generator=gen)]
                if carry.shape[0]:
                    rows = torch.cat([carry, rows])
                n_full = rows.shape[0] // batch_size
                for b in range(n_full):
                    yield rows[b * batch_size : (b + 1) * batch_size]
                carry = rows[n_full * batch_size :]

    def keep_in_memory(self, layer: int, split: str = "test") -> torch.Tensor:
        """Load one (layer, split) once and serve later ``acts`` calls from memory."""
        key = (self._layer(layer), self._split(split))
        if key not in self._resident:
            self._resident[key] = self.acts(layer, split)
        return self._resident[key]

    def verify(self, check_hash: bool = True) -> list[str]:
        """Names of shards whose file is missing or does not match its recorded size (and sha256)."""
        bad = []
        for shard in self.manifest["shards"]:
            if not _shard_ok(self.root, shard, check_hash):
                bad.append(shard["file"])
        return bad

    def manifest_hash(self) -> str:
        """A short hash of what this cache holds (key + shard hashes): SAEs trained on it are keyed by it."""
        return stable_hash({"key": self.manifest["key"], "shards": [s["sha256"] for s in self.manifest["shards"]]})


def token_mask(tokens: torch.Tensor, exclude_tokens: Sequence[int] = ()) -> torch.Tensor:
    """Bool mask (same shape as ``tokens``): True where the token is not one of ``exclude_tokens``."""
    if not len(exclude_tokens):
        return torch.ones_like(tokens, dtype=torch.bool)
    return ~torch.isin(tokens, torch.as_tensor(list(exclude_tokens), dtype=tokens.dtype))


def _shard_ok(root: Path, shard: Mapping[str, Any], check_hash: bool) -> bool:
    path = root / shard["file"]
    if not path.exists() or path.stat().st_size != shard["bytes"]:
        return False
    return not check_hash or file_record(path)["sha256"] == shard["sha256"]


def open_cache(path: str | Path, check_hash: bool = False) -> ActivationCache:
    """Open a finished cache; CacheError if it is incomplete or a shard does not match its manifest.

    Sizes are always checked; ``check_hash=True`` also re-hashes every shard (slower, reads everything).
    """
    root = Path(path)
    if not (root / MANIFEST).exists():
        raise CacheError(f"{root}: no activation cache here (no {MANIFEST})")
    manifest = read_json(root / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise CacheError(f"{root}: not an activation cache of format {FORMAT}")
    if not manifest.get("complete"):
        raise CacheError(f"{root}: harvest did not finish; rerun harvest() with the same parameters to resume")
    cache = ActivationCache(root, manifest)
    bad = cache.verify(check_hash=check_hash)
    if bad:
        raise CacheError(f"{root}: shards damaged or missing: {bad}; rerun harvest() to redo them")
    return cache


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------
def cache_key(meta: Mapping[str, Any], layers: Sequence[int], tokens_by_split: Mapping[str, torch.Tensor],
              dtype: str, shard_windows: int) -> str:
    """What decides the cache's content: model, variant, seed, corpus, the exact tokens, layers, dtype, sharding."""
    return stable_hash(
        {
            "meta": {k: meta.get(k) for k in ("model", "variant", "seed", "corpus_sha256", "revision")},
            "layers": sorted(layers),
            "tokens": {s: _tokens_digest(t) for s, t in sorted(tokens_by_split.items())},
            "dtype": dtype,
            "shard_windows": shard_windows,
            "format": FORMAT,
        }
    )


def is_complete(path: str | Path, key: str | None = None) -> bool:
    """True when ``path`` holds a finished cache (with ``key``, when given) whose shards all have their size."""
    try:
        cache = open_cache(path)
    except CacheError:
        return False
    return key is None or cache.manifest.get("key") == key


def _shard_seed(seed: int, split: str, index: int) -> int:
    return int(stable_hash({"seed": seed, "split": split, "shard": index}, length=12), 16) % (2**62)


@torch.no_grad()
def run_layers(model: Any, tokens: torch.Tensor, layers: Sequence[int], batch_size: int) -> dict[int, torch.Tensor]:
    """Residual stream after each of ``layers`` for ``tokens`` (n, ctx), in one forward stopped after the deepest."""
    names = {hook_name(layer): layer for layer in layers}
    stop = max(layers) + 1
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def grab(act: torch.Tensor, hook: Any) -> None:
        out[names[hook.name]].append(act.detach().to("cpu", torch.float32))

    device = next(model.parameters()).device
    hooks = [(name, grab) for name in names]
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size].to(device)
        model.run_with_hooks(batch, fwd_hooks=hooks, stop_at_layer=stop)
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def stream_activations(
    model: Any,
    tokens: torch.Tensor,
    layers: Sequence[int],
    batch_size: int,
    *,
    harvest_batch: int = 8,
    seed: int = 0,
    exclude_tokens: Sequence[int] = (),
    buffer_tokens: int | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless iterator of ``{hook_name(L): (batch_size, d_model)}`` float32 batches made on the fly, never stored.

    The paper trains on 100M tokens per SAE: a cache of that is ~100 GB per layer of Pythia-70m, so at that scale
    the activations are streamed instead. Each epoch visits the windows in a seeded random order, ``harvest_batch``
    windows per forward (stopped after the deepest layer); positions holding ``exclude_tokens`` are dropped; rows
    are mixed in a buffer of ``buffer_tokens`` (default 16 batches), which yields a random half and keeps the
    other half, like sae-lens's mixing buffer. Every layer's batch holds the same token positions. Tensors stay on
    the model's device. Same seed, same batches; the control variant's embedding noise is reseeded per forward.
    """
    layers = sorted({int(x) for x in layers})
    if not layers:
        raise ParameterError("parameter 'layers' must name at least one layer")
    tokens = torch.as_tensor(tokens).long()
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ParameterError(
            f"parameter 'tokens' must be a non-empty (n_windows, ctx) tensor; got shape {tuple(tokens.shape)}"
        )
    keep_all = token_mask(tokens, exclude_tokens)
    if not bool(keep_all.any()):
        raise ParameterError("parameter 'exclude_tokens' leaves no token positions to train on")
    buffer_tokens = int(buffer_tokens or 16 * batch_size)
    if buffer_tokens < 2 * batch_size:
        raise ParameterError(
            f"parameter 'buffer_tokens' must be >= 2 x batch_size ({2 * batch_size}); got {buffer_tokens}"
        )
    names = [hook_name(layer) for layer in layers]
    stop = layers[-1] + 1
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    noise = getattr(model, "rsae_embedding_noise", None)  # the control variant's own noise generator
    grabbed: dict[str, torch.Tensor] = {}

    def grab(act: torch.Tensor, hook: Any) -> None:
        grabbed[hook.name] = act.detach()

    buf: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    n_buf, epoch = 0, 0
    while True:
        order = torch.randperm(tokens.shape[0], generator=gen)
        for start in range(0, len(order), harvest_batch):
            idx = order[start : start + harvest_batch]
            if noise is not None:
                noise.generator.manual_seed(_shard_seed(seed, f"stream-{epoch}", start))
            with torch.no_grad():
                model.run_with_hooks(tokens[idx].to(device), fwd_hooks=[(n, grab) for n in names], stop_at_layer=stop)
            keep = keep_all[idx].reshape(-1).to(device)
            for n in names:
                buf[n].append(grabbed[n].reshape(-1, grabbed[n].shape[-1])[keep].float())
            n_buf += int(keep.sum())
            if n_buf < buffer_tokens:
                continue
            rows = {n: torch.cat(buf[n]) for n in names}
            perm = torch.randperm(n_buf, generator=gen).to(device)
            n_out = (n_buf // 2) // batch_size * batch_size
            for b in range(0, n_out, batch_size):
                sel = perm[b : b + batch_size]
                yield {n: rows[n][sel] for n in names}
            rest = perm[n_out:]
            buf = {n: [rows[n][rest]] for n in names}
            n_buf = len(rest)
        epoch += 1


def harvest(
    model: Any,
    tokens_by_split: Mapping[str, torch.Tensor],
    layers: Sequence[int],
    out_dir: str | Path,
    meta: Mapping[str, Any],
    batch_size: int = 8,
    *,
    shard_windows: int = DEFAULT_SHARD_WINDOWS,
    dtype: str = "float32",
    max_shards: int | None = None,
    progress: bool = False,
) -> ActivationCache:
    """Run ``model`` once over every split's windows and write each requested layer's residual stream to disk.

    ``meta`` describes the run and is recorded: ``model``, ``variant``, ``seed`` and ``corpus_sha256`` form part of
    the cache key (with the exact tokens, layers, dtype and shard size); anything else (e.g. the variant record,
    corpus source) is stored as is. A folder holding a finished cache with the same key is returned untouched; a
    partial or damaged one is completed. ``max_shards`` stops after that many newly computed shards (used to
    simulate an interruption); the manifest then says ``complete: false``.
    """
    if dtype not in DTYPES:
        raise ParameterError(f"parameter 'dtype' must be one of {', '.join(map(repr, DTYPES))}; got {dtype!r}")
    layers = sorted({int(x) for x in layers})
    if not layers:
        raise ParameterError("parameter 'layers' must name at least one layer")
    n_layers = int(getattr(getattr(model, "cfg", None), "n_layers", max(layers) + 1))
    if layers[0] < 0 or layers[-1] >= n_layers:
        raise ParameterError(f"parameter 'layers' must be within 0..{n_layers - 1} for this model; got {layers}")
    splits = [s for s in SPLITS if s in tokens_by_split] + [s for s in tokens_by_split if s not in SPLITS]
    tokens_by_split = {s: torch.as_tensor(tokens_by_split[s]).long().cpu().contiguous() for s in splits}
    ctxs = {t.shape[1] for t in tokens_by_split.values() if t.ndim == 2}
    if len(ctxs) != 1 or any(t.ndim != 2 for t in tokens_by_split.values()):
        raise ParameterError("tokens_by_split must map split names to (n_windows, ctx) tensors of one ctx")
    ctx = ctxs.pop()
    d_model = int(model.cfg.d_model)
    key = cache_key(meta, layers, tokens_by_split, dtype, shard_windows)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)

    old: dict[str, Any] = {}
    if (root / MANIFEST).exists():
        try:
            old = read_json(root / MANIFEST)
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("key") != key:
            if old:
                warnings.warn(f"{root}: cache made with other parameters; rebuilding it", stacklevel=2)
            old = {}
    done = {s["file"]: s for s in old.get("shards", []) if _shard_ok(root, s, check_hash=True)}
    if old and old.get("complete") and len(done) == len(old.get("shards", [])):
        return ActivationCache(root, old)

    seed = int(meta.get("seed", 0) or 0)
    tokens_path = root / TOKENS_FILE
    if not tokens_path.exists() or old.get("tokens_file", {}).get("sha256") != file_record(tokens_path)["sha256"]:
        atomic_write_bytes(tokens_path, st_save(dict(tokens_by_split)))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "key": key,
        "complete": False,
        **{k: v for k, v in meta.items() if k not in ("layers",)},
        "model": meta.get("model"),
        "variant": meta.get("variant"),
        "seed": seed,
        "corpus_sha256": meta.get("corpus_sha256"),
        "activation_source": (
            "forward with fresh N(0,1) noise in place of every token embedding (control variant)"
            if meta.get("variant") == "control"
            else "ordinary forward"
        ),
        "layers": layers,
        "hook_names": [hook_name(x) for x in layers],
        "stop_at_layer": layers[-1] + 1,
        "ctx": ctx,
        "d_model": d_model,
        "dtype": dtype,
        "shard_windows": shard_windows,
        "n_windows": {s: int(t.shape[0]) for s, t in tokens_by_split.items()},
        "n_tokens": {s: int(t.numel()) for s, t in tokens_by_split.items()},
        "tokens_sha256": {s: _tokens_digest(t) for s, t in tokens_by_split.items()},
        "tokens_file": {"file": TOKENS_FILE, **file_record(tokens_path)},
        "shards": [],
        "provenance": provenance(),
        "harvest_seconds": float(old.get("harvest_seconds", 0.0)),
    }

    n_new = 0
    t_dtype = DTYPES[dtype]
    for split, toks in tokens_by_split.items():
        for index, start in enumerate(range(0, toks.shape[0], shard_windows)):
            end = min(start + shard_windows, toks.shape[0])
            name = _shard_name(split, index)
            if name in done and done[name]["windows"] == [start, end]:
                manifest["shards"].append(done[name])
                continue
            if max_shards is not None and n_new >= max_shards:
                write_json(root / MANIFEST, manifest)
                return ActivationCache(root, manifest)
            t0 = time.perf_counter()
            shard_seed = _shard_seed(seed, split, index)
            noise = getattr(model, "rsae_embedding_noise", None)  # the control variant's own noise generator
            if noise is not None:
                noise.generator.manual_seed(shard_seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(shard_seed)
                acts = run_layers(model, toks[start:end], layers, batch_size)
            tensors = {}
            for layer, a in acts.items():
                if t_dtype == torch.float16 and a.abs().max().item() > _FP16_MAX:
                    raise CacheError(f"layer {layer} has values beyond float16 range; use dtype='float32'")
                tensors[hook_name(layer)] = a.to(t_dtype).contiguous()
            tmp = root / f".{name}.tmp"
            st_save_file(tensors, tmp)
            tmp.replace(root / name)
            manifest["shards"].append({"split": split, "index": index, "file": name, "windows": [start, end],
                                       **file_record(root / name)})
            manifest["harvest_seconds"] += time.perf_counter() - t0
            write_json(root / MANIFEST, manifest)
            n_new += 1
            if progress:
                print(f"  {meta.get('variant')}: {split} shard {index} ({end}/{toks.shape[0]} windows)", flush=True)
    manifest["complete"] = True
    manifest["harvest_tokens_per_s"] = round(
        sum(manifest["n_tokens"].values()) / max(manifest["harvest_seconds"], 1e-9), 1
    )
    write_json(root / MANIFEST, manifest)
    return ActivationCache(root, manifest)
