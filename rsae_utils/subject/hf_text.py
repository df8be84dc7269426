"""Text from a Hugging Face data set, streamed: ``hf:<dataset>[:split]`` corpus sources.

``split`` is a split name, optionally sliced the way ``datasets`` writes it: ``train``, ``train[:15%]``,
``train[25%:30%]``, ``train[1000:2000]``. The paper's SAEs train on ``EleutherAI/rpj-v2-sample`` ``train[:15%]``
and its latents are cached from the disjoint ``train[25%:30%]``. Streaming cannot slice by percent, so a percent
slice needs the split's row count: from the data set's metadata when it has one, else by counting the stream once.
A row's text is its ``text`` or ``raw_content`` field (``subject.text.TEXT_FIELDS``).

``RSAE_HF_DATASETS_DIR`` names a local mirror for machines without the hub (a cluster node): ``hf:<org>/<name>``
then reads the data files under ``$RSAE_HF_DATASETS_DIR/<org>/<name>/`` (as ``huggingface-cli download --repo-type
dataset <org>/<name> --local-dir ...`` leaves them) through the same streaming and slicing code.
"""

from __future__ import annotations

import os
import re
from itertools import islice
from pathlib import Path

from huggingface_hub import HfApi

from rsae_utils.errors import ParameterError
from rsae_utils.subject.hub import hub_reachable
from rsae_utils.subject.text import TEXT_FIELDS, row_text

MIRROR_ENV = "RSAE_HF_DATASETS_DIR"
# An hf: corpus without max_chars stops here: ~130M tokens, enough for the paper's 100M training tokens plus
# held-out windows, without streaming a whole billion-token dataset into memory.
HF_DEFAULT_MAX_CHARS = 600_000_000

_SPLIT_RE = re.compile(r"^(?P<base>[A-Za-z0-9_.\-]+)(\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """(split name, start, stop) of ``train[25%:30%]``-style text; ParameterError for anything else."""
    m = _SPLIT_RE.match(split.strip())
    bounds = [m.group("start"), m.group("stop")] if m else []
    if not m or any(b is not None and b.endswith("%") and not 0 <= int(b[:-1]) <= 100 for b in bounds):
        raise ParameterError(
            f"parameter 'corpus': split {split!r} must be a split name, optionally sliced as datasets writes it "
            "(e.g. 'train', 'train[:15%]', 'train[25%:30%]', 'train[:10000]')"
        )
    return m.group("base"), m.group("start"), m.group("stop")


def slice_bounds(start: str | None, stop: str | None, n_rows: int | None) -> tuple[int, int | None]:
    """Row range [a, b) of a slice; percent bounds round to the closest row, as ``datasets`` does."""

    def one(bound: str | None, default: int | None) -> int | None:
        if bound is None:
            return default
        if bound.endswith("%"):
            return int(round(int(bound[:-1]) * n_rows / 100))  # type: ignore[operator]
        value = int(bound)
        return value if value >= 0 or n_rows is None else max(0, n_rows + value)

    return one(start, 0) or 0, one(stop, n_rows)


def dataset_location(name: str) -> tuple[str, bool]:
    """(what ``datasets.load_dataset`` is given, whether it is a local mirror)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        folder = Path(mirror).expanduser() / name
        if not folder.is_dir():
            raise ParameterError(
                f"parameter 'corpus' = 'hf:{name}': {MIRROR_ENV} is set but {folder} does not exist; download the "
                f"data set there (huggingface-cli download --repo-type dataset {name} --local-dir {folder}) or "
                f"unset {MIRROR_ENV}"
            )
        return str(folder), True
    return name, False


def gather_hf(name: str, split: str, max_chars: int | None) -> tuple[list[str], dict]:
    """Documents of ``hf:<name>:<split>`` in stream order, up to ``max_chars`` characters; info for manifests."""
    base, start, stop = parse_split(split)
    location, mirrored = dataset_location(name)
    if not mirrored:
        reachable, reason = hub_reachable(datasets=True)
        if not reachable:
            raise ParameterError(
                f"parameter 'corpus' = 'hf:{name}' needs the Hugging Face hub, which is not reachable here ({reason}); "
                f"offline, use corpus='site-packages' (or 'dir:<folder>', or a local copy named by {MIRROR_ENV})"
            )
    if max_chars is None:
        max_chars = HF_DEFAULT_MAX_CHARS
    ds, how = open_hf_stream(location, base)
    n_rows = None
    if any(b is not None and (b.endswith("%") or b.startswith("-")) for b in (start, stop)):
        n_rows, counted = split_rows(location, base)
        how += f"; {n_rows:,} rows in {base!r} ({counted})"
    a, b = slice_bounds(start, stop, n_rows)
    texts, total = [], 0
    for i, row in enumerate(islice(ds, a, b)):
        text = row_text(row)
        if text is None:
            raise ParameterError(f"dataset {name!r} row {a + i} has no string field among {list(TEXT_FIELDS)}")
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return texts, {
        "dataset": name,
        "split": split,
        "rows": [a, b],
        "rows_read": len(texts),
        "loaded_as": how,
        "chars_cap": max_chars,
        "mirror": location if mirrored else None,
    }


def split_rows(location: str, split: str) -> tuple[int, str]:
    """(rows in ``split``, how they were counted): the data set's metadata, else one pass over the stream."""
    import datasets  # deferred: only hub corpora need it, and it takes seconds to import

    try:
        splits = datasets.load_dataset_builder(location).info.splits or {}
        n = splits[split].num_examples if split in splits else None
        if n:
            return int(n), "from the data set's metadata"
    except Exception:  # noqa: BLE001 - script repos and some formats have no builder metadata
        pass
    ds, _ = open_hf_stream(location, split)
    return sum(1 for _ in ds), "counted by streaming the split once"


def open_hf_stream(name: str, split: str):
    """A streaming iterator of rows; for script-based repos (the RedPajama sample), its .jsonl files mixed.

    ``datasets`` >= 4 no longer runs dataset scripts. The togethercomputer RedPajama sample keeps one .jsonl file
    per source (arxiv, books, c4, common crawl, github, stackexchange, wikipedia), so reading the files in order
    would give a prefix of one or two sources: the files are interleaved at random (seed 0) with probabilities
    proportional to their sizes, which keeps the sample's own mixture in any prefix.
    """
    import datasets  # deferred: only hub corpora need it, and it takes seconds to import

    try:
        return datasets.load_dataset(name, split=split, streaming=True), "load_dataset"
    except Exception as err:  # noqa: BLE001 - datasets raises several types for script repos
        if "script" not in str(err).lower():
            raise
    info = HfApi().dataset_info(name, files_metadata=True)
    files = sorted((f.rfilename, f.size or 1) for f in info.siblings or () if f.rfilename.endswith(".jsonl"))
    if not files:
        raise ParameterError(f"dataset {name!r} needs a loading script and has no .jsonl files to read instead")
    streams = [
        datasets.load_dataset("json", data_files=f"hf://datasets/{name}/{f}", split="train", streaming=True)
        for f, _ in files
    ]
    total = sum(size for _, size in files)
    mixed = datasets.interleave_datasets(
        streams, probabilities=[size / total for _, size in files], seed=0, stopping_strategy="all_exhausted"
    )
    return mixed, f"{len(files)} jsonl files interleaved by size (seed 0)"
