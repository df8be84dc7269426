"""Text corpora and their tokenization into fixed-length training / evaluation windows.

Sources (``load_corpus(source)``):

* ``"site-packages"`` (offline default): the human-written English installed with the Python environment
  itself: the long descriptions in ``*.dist-info/METADATA`` (package READMEs) and ``.md``/``.rst``/``.txt``
  documentation files, optionally docstrings. Gathered deterministically (sorted paths), lightly cleaned
  (markdown/rst links and images, HTML tags, fenced code blocks), filtered paragraph by paragraph with simple
  heuristics (enough words, mostly letters, enough English function words, no license boilerplate, no code
  prompts), deduplicated by paragraph and by document content hash. The contributing packages and their versions
  are recorded: two machines get the same corpus (same sha256) exactly when they have the same package versions.
* ``"hf:<dataset>[:split]"``: a Hugging Face dataset with a ``text`` column, streamed (network); the paper's is
  ``hf:togethercomputer/RedPajama-Data-1T-Sample``.
* ``"dir:<path>"``: every ``*.txt`` file (one document each) and ``*.jsonl`` file (one document per line, its
  ``"text"`` field) under a local folder, in sorted path order.

Every source is normalised the same way (Unicode NFC, ``\\n`` line ends, no trailing spaces, at most one blank
line in a row) and deduplicated by document hash. ``Corpus.sha256`` hashes the normalised documents in order.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import socket
import sysconfig
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rsae_utils.profiles import ParameterError

# Bumped whenever gathering or filtering changes, so results keyed on a corpus are not silently reused.
FILTER_VERSION = "site-packages-v2"

SOURCES_HELP = (
    "'site-packages' (offline default: documentation installed with the environment), 'site-packages+docstrings' "
    "(the same plus docstrings: ~30x larger, more technical), "
    "'hf:<dataset>[:split]' (network, e.g. 'hf:togethercomputer/RedPajama-Data-1T-Sample'), "
    "or 'dir:<folder of .txt / .jsonl files>'"
)

# An hf: corpus without max_chars stops here: ~130M tokens, enough for the paper's 100M training tokens plus
# held-out windows, without streaming a whole billion-token dataset into memory.
HF_DEFAULT_MAX_CHARS = 600_000_000

# Our own package's README is part of site-packages when installed editable: it changes with the project, so it
# would make the corpus hash drift with every README edit.
EXCLUDED_DISTRIBUTIONS = {"rsae-utils", "rsae_utils"}

_DOC_SUFFIXES = {".md", ".rst", ".txt", ".markdown"}
_SKIP_NAME = re.compile(
    r"^(licen[cs]e|copying|notice|thirdpartynotices|third_party_notices|authors|contributors|requirements"
    r"|record|top_level|entry_points|dependency_links|sources|installer|requested|wheel|namespace_packages"
    r"|not-zip-safe|api|vocab|merges)([._-].*)?$",
    re.IGNORECASE,
)
_SKIP_DIR = {"tests", "test", "testing", "data", "datasets", "fixtures", "licenses", "licences", "_vendor", "vendor"}
_MAX_FILE_BYTES = 1 << 20

_STOPWORDS = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "is",
        "that",
        "for",
        "it",
        "with",
        "as",
        "be",
        "on",
        "this",
        "are",
        "by",
        "or",
        "an",
        "can",
        "you",
        "not",
        "from",
        "at",
        "which",
        "was",
        "have",
        "if",
        "will",
        "your",
        "we",
        "but",
        "all",
        "their",
        "they",
        "has",
        "its",
        "more",
        "one",
        "when",
        "there",
        "these",
        "also",
        "been",
        "were",
        "than",
        "other",
        "into",
        "so",
        "may",
        "such",
        "use",
        "used",
        "using",
        "any",
        "only",
        "how",
        "what",
        "each",
        "should",
        "would",
        "our",
        "some",
        "no",
        "do",
        "does",
        "then",
        "them",
        "about",
        "between",
        "both",
        "most",
    ]
)
_LICENSE_PHRASES = (
    "permission is hereby granted",
    "the software is provided",
    "redistribution and use in source and binary forms",
    "licensed under the apache license",
    "gnu general public license",
    "gnu lesser general public license",
    "without warranties or conditions of any kind",
    "without any warranty",
    "this program is free software",
    "all rights reserved",
    "mozilla public license",
    "the above copyright notice",
    "spdx-license-identifier",
)

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^>\n]{0,400}>")
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
_RST_LINK = re.compile(r"`([^`<\n]+?)\s*<[^>\n]+>`_{1,2}")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_CODE_LINE = re.compile(
    r"^\s*(>>>|\.\.\.\s|\$ |In \[\d*\]|%|pip install|import |from \S+ import|def |class |return |@\w"
    r"|[A-Za-z_][\w.\[\]'\"]*\s*[-+*/]?=\s*\S)"
)
_CODE_CHARS = frozenset("=(){}[];<>_\\|#")


@dataclass
class Corpus:
    """A list of normalised documents with a content hash; ``info`` holds how it was gathered."""

    texts: list[str]
    source: str
    sha256: str
    n_chars: int
    n_docs: int
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-able record for manifests (without the texts)."""
        return {"source": self.source, "sha256": self.sha256, "n_chars": self.n_chars, "n_docs": self.n_docs,
                **self.info}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Normalisation, hashing, filters
# --------------------------------------------------------------------------------------------------------------
def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def corpus_sha256(texts: list[str]) -> str:
    """sha256 over the documents in order, each UTF-8 encoded and followed by a 0x1e record separator."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def strip_markup(text: str) -> str:
    """Drop code blocks, images and HTML; keep the visible text of links."""
    text = _FENCE.sub("", text)
    text = _HTML_COMMENT.sub("", text)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _RST_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _URL.sub("", text)
    return text


def is_prose(paragraph: str, min_words: int = 8) -> bool:
    """Heuristic: an English prose paragraph (not code, tables, lists of names, data or license text)."""
    words = _WORD.findall(paragraph)
    if len(words) < min_words:
        return False
    lines = paragraph.split("\n")
    if any(_CODE_LINE.match(line) for line in lines):
        return False
    # rst literal blocks, tables and indented code: most lines indented or ruled
    if (
        sum(line.startswith("    ") or line.lstrip().startswith(("|", "+-", "==", "--")) for line in lines)
        > len(lines) / 2
    ):
        return False
    chars = [c for c in paragraph if not c.isspace()]
    if sum(c.isalpha() for c in chars) < 0.75 * len(chars) or sum(c in _CODE_CHARS for c in chars) > 0.04 * len(chars):
        return False
    lowered = [w.lower() for w in words]
    if sum(w in _STOPWORDS for w in lowered) < 0.2 * len(words):
        return False
    if sum(len(w) for w in words) / len(words) > 10:
        return False
    low = paragraph.lower()
    return not any(p in low for p in _LICENSE_PHRASES)


def clean_document(text: str, seen_paragraphs: set[str] | None = None, min_words: int = 8) -> str:
    """Markup stripped, non-prose and already-seen paragraphs dropped; the kept paragraphs joined by blank lines."""
    kept = []
    for para in re.split(r"\n\s*\n", strip_markup(normalise(text))):
        para = para.strip()
        if not para or not is_prose(para, min_words=min_words):
            continue
        # rst / markdown heading underlines and list bullets are layout, not text
        para = re.sub(r"^\s*[-*+]\s+", "", para, flags=re.MULTILINE)
        key = _text_hash(re.sub(r"\s+", " ", para.lower()))
        if seen_paragraphs is not None:
            if key in seen_paragraphs:
                continue
            seen_paragraphs.add(key)
        kept.append(para)
    return "\n\n".join(kept)


# --------------------------------------------------------------------------------------------------------------
# site-packages
# --------------------------------------------------------------------------------------------------------------
def site_package_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    dirs = {Path(paths[k]).resolve() for k in ("purelib", "platlib") if k in paths}
    return sorted(d for d in dirs if d.is_dir())


def _metadata_body(path: Path) -> str:
    msg = email.parser.Parser().parsestr(path.read_text(encoding="utf-8", errors="strict"))
    body = msg.get_payload()
    if not isinstance(body, str) or not body.strip():
        body = msg.get("Description", "") or ""
    return body


def _candidate_files(root: Path, include_docstrings: bool) -> list[tuple[str, Path]]:
    """(kind, path) of every file that may hold documentation, sorted by path relative to ``root``."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        in_dist_info = rel_dir.parts[:1] and rel_dir.parts[0].endswith((".dist-info", ".egg-info"))
        dirnames[:] = sorted(
            d for d in dirnames if d.lower() not in _SKIP_DIR and not d.startswith(".") and d != "__pycache__"
        )
        for name in sorted(filenames):
            if in_dist_info:
                if name in ("METADATA", "PKG-INFO"):
                    out.append(("metadata", Path(dirpath, name)))
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix in _DOC_SUFFIXES and not _SKIP_NAME.match(name):
                out.append(("doc", Path(dirpath, name)))
            elif include_docstrings and suffix == ".py":
                out.append(("py", Path(dirpath, name)))
    return sorted(out, key=lambda kp: kp[1].relative_to(root).as_posix())


_DOCSTRING = re.compile(r":[ \t]*(?:#[^\n]*)?\n[ \t]*[rRuU]?(\"\"\"|\'\'\')(.*?)\1", re.DOTALL)
_MODULE_DOCSTRING = re.compile(r"\A\s*(?:#[^\n]*\n\s*)*[rRuU]?(\"\"\"|\'\'\')(.*?)\1", re.DOTALL)


def _docstrings(source: str) -> str:
    """Docstrings of a Python source: the module's, and every triple-quoted string that opens an indented block.

    A regular expression rather than ``ast``: parsing the ~16k files of a typical environment took minutes here,
    and a string right after a ``def``/``class`` line is what a docstring is.
    """
    docs = [m.group(2) for m in _MODULE_DOCSTRING.finditer(source)]
    docs += [m.group(2) for m in _DOCSTRING.finditer(source)]
    return "\n\n".join(inspect.cleandoc(d) for d in docs if d.strip())


def _file_owners(roots: list[Path]) -> dict[str, tuple[str, str]]:
    """Top-level entry of site-packages (package folder, module file or dist-info folder) -> (name, version).

    Built from each distribution's RECORD paths without touching the file system per file (resolving ~60k paths
    took minutes on a slow disk); a file belongs to the distribution that installed its top-level entry.
    """
    owners: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions(path=[str(r) for r in roots]):
        name = dist.metadata["Name"] or "?"
        for f in dist.files or ():
            top = f.parts[0] if f.parts else ""
            if top and top != ".." and top not in owners:
                owners[top] = (name, dist.version)
    return owners


def _gather_site_packages(include_docstrings: bool, min_doc_chars: int) -> tuple[list[str], dict]:
    roots = site_package_dirs()
    owners = _file_owners(roots)
    seen_paragraphs: set[str] = set()
    seen_docs: set[str] = set()
    docs: list[tuple[str, str]] = []  # (content hash, text)
    packages: dict[str, str] = {}
    counts = {"files_scanned": 0, "files_kept": 0, "dropped_short_or_not_prose": 0, "dropped_duplicate": 0}
    for root in roots:
        for kind, path in _candidate_files(root, include_docstrings):
            owner = owners.get(path.relative_to(root).parts[0])
            if owner and owner[0].lower().replace("_", "-") in EXCLUDED_DISTRIBUTIONS:
                continue
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                raw = path.read_text(encoding="utf-8", errors="strict")
                if kind == "metadata":
                    raw = _metadata_body(path)
                elif kind == "py":
                    raw = _docstrings(raw)
            except (OSError, UnicodeDecodeError):
                continue
            counts["files_scanned"] += 1
            text = clean_document(raw, seen_paragraphs)
            if len(text) < min_doc_chars:
                counts["dropped_short_or_not_prose"] += 1
                continue
            h = _text_hash(text)
            if h in seen_docs:
                counts["dropped_duplicate"] += 1
                continue
            seen_docs.add(h)
            docs.append((h, text))
            counts["files_kept"] += 1
            if owner:
                packages[owner[0]] = owner[1]
    # Order documents by content hash: deterministic, independent of where the environment lives, and it mixes
    # packages so a max_chars prefix is not just the packages whose names sort first.
    docs.sort()
    info = {
        **counts,
        "site_dirs": len(roots),
        "include_docstrings": include_docstrings,
        "filter_version": FILTER_VERSION,
        "packages": {k: packages[k] for k in sorted(packages, key=str.lower)},
    }
    return [t for _, t in docs], info


def environment_fingerprint() -> list[str]:
    """Sorted ``name==version`` of every distribution in site-packages (our own package excluded)."""
    out = set()
    for dist in importlib.metadata.distributions(path=[str(r) for r in site_package_dirs()]):
        name = dist.metadata["Name"] or "?"
        if name.lower().replace("_", "-") not in EXCLUDED_DISTRIBUTIONS:
            out.add(f"{name}=={dist.version}")
    return sorted(out, key=str.lower)


def _cached_site_packages(include_docstrings: bool, min_doc_chars: int) -> tuple[list[str], dict]:
    from rsae_utils.models import model_cache_dir
    from rsae_utils.repro import stable_hash
    from rsae_utils.store import cached_artifact, read_json, write_json

    env = environment_fingerprint()
    params = {"filter_version": FILTER_VERSION, "docstrings": include_docstrings, "min_doc_chars": min_doc_chars,
              "environment": env}  # fmt: skip

    def build(tmp: Path) -> dict:
        texts, info = _gather_site_packages(include_docstrings, min_doc_chars)
        write_json(tmp / "texts.json", texts)
        return {"info": info}

    path = cached_artifact(model_cache_dir() / "corpus" / f"site-packages-{stable_hash(params)}", params, build)
    manifest = read_json(path / "manifest.json")
    return read_json(path / "texts.json"), dict(manifest["info"])


# --------------------------------------------------------------------------------------------------------------
# Other sources
# --------------------------------------------------------------------------------------------------------------
def _gather_dir(folder: Path) -> tuple[list[str], dict]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".jsonl"))
    texts: list[str] = []
    for path in files:
        if path.suffix.lower() == ".txt":
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
            continue
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ParameterError(f"corpus file {path}, line {lineno}: not JSON ({err})") from err
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ParameterError(f"corpus file {path}, line {lineno}: needs a string field 'text'")
                texts.append(row["text"])
    return texts, {"n_files": len(files)}


def _gather_hf(name: str, split: str, max_chars: int | None) -> tuple[list[str], dict]:
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    reachable = False
    if not offline:
        try:
            with socket.create_connection(("huggingface.co", 443), timeout=3.0):
                reachable = True
        except OSError:
            reachable = False
    if not reachable:
        raise ParameterError(
            f"parameter 'corpus' = 'hf:{name}' needs the Hugging Face hub, which is not reachable here; "
            "offline, use corpus='site-packages' (or 'dir:<folder>')"
        )
    if max_chars is None:
        max_chars = HF_DEFAULT_MAX_CHARS
    ds, how = _open_hf_stream(name, split)
    texts, total = [], 0
    for row in ds:
        text = row.get("text")
        if not isinstance(text, str):
            raise ParameterError(f"dataset {name!r} has no string column 'text'")
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return texts, {"dataset": name, "split": split, "loaded_as": how, "chars_cap": max_chars}


def _open_hf_stream(name: str, split: str):
    """A streaming iterator of rows; for script-based repos (the RedPajama sample), its .jsonl files mixed.

    ``datasets`` >= 4 no longer runs dataset scripts. The RedPajama sample keeps one .jsonl file per source
    (arxiv, books, c4, common crawl, github, stackexchange, wikipedia), so reading the files in order would give a
    prefix of one or two sources: the files are interleaved at random (seed 0) with probabilities proportional to
    their sizes, which keeps the sample's own mixture in any prefix.
    """
    import datasets

    try:
        return datasets.load_dataset(name, split=split, streaming=True), "load_dataset"
    except Exception as err:  # noqa: BLE001 - datasets raises several types for script repos
        if "script" not in str(err).lower():
            raise
    from huggingface_hub import HfApi

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


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------
def validate_corpus_source(source: Any) -> tuple[str, str]:
    """(kind, argument) of a corpus source string; ParameterError naming the allowed forms."""
    if not isinstance(source, str) or not source.strip():
        raise ParameterError(f"parameter 'corpus' must be {SOURCES_HELP}; got {source!r}")
    if source in ("site-packages", "site-packages+docstrings"):
        return source, ""
    kind, _, arg = source.partition(":")
    if kind == "hf" and arg.strip():
        return "hf", arg.strip()
    if kind == "dir" and arg.strip():
        folder = Path(arg.strip()).expanduser()
        if not folder.is_dir():
            raise ParameterError(f"parameter 'corpus' = {source!r}: folder {str(folder)!r} does not exist")
        return "dir", str(folder)
    raise ParameterError(f"parameter 'corpus' must be {SOURCES_HELP}; got {source!r}")


def load_corpus(
    source: str = "site-packages",
    max_chars: int | None = None,
    include_docstrings: bool = False,
    min_doc_chars: int = 200,
    use_cache: bool = True,
) -> Corpus:
    """Load, normalise and deduplicate a corpus; ``max_chars`` keeps whole documents up to that many characters.

    The site-packages corpus is cached (``use_cache``) under ``model_cache_dir()/corpus``, keyed by the filter
    version, the options and the name==version list of installed distributions (with docstrings it takes ~40 s).

    An empty result raises ParameterError.
    """
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ParameterError(f"parameter 'max_chars' must be None or a positive integer; got {max_chars!r}")
    kind, arg = validate_corpus_source(source)
    t0 = time.perf_counter()
    if kind.startswith("site-packages"):
        include_docstrings = include_docstrings or kind == "site-packages+docstrings"
        if use_cache:
            texts, info = _cached_site_packages(include_docstrings, min_doc_chars)
        else:
            texts, info = _gather_site_packages(include_docstrings, min_doc_chars)
    elif kind == "dir":
        texts, info = _gather_dir(Path(arg))
    else:
        name, _, split = arg.partition(":")
        texts, info = _gather_hf(name, split or "train", max_chars)
    # Every source: normalised, empty documents dropped, exact duplicates dropped (first occurrence kept).
    out, seen, n_dup = [], set(), 0
    for t in texts:
        t = normalise(t)
        if not t:
            continue
        h = _text_hash(t)
        if h in seen:
            n_dup += 1
            continue
        seen.add(h)
        out.append(t)
    if max_chars is not None:
        kept, total = [], 0
        for t in out:
            if total + len(t) > max_chars and kept:
                break
            kept.append(t if total + len(t) <= max_chars else t[:max_chars])
            total += len(kept[-1])
        out = kept
    if not out:
        raise ParameterError(
            f"parameter 'corpus' = {source!r} gave an empty corpus (no documents left after filtering); "
            f"allowed sources: {SOURCES_HELP}"
        )
    info.update({"duplicates_dropped": n_dup, "max_chars": max_chars, "build_s": round(time.perf_counter() - t0, 2)})
    return Corpus(
        texts=out, source=source, sha256=corpus_sha256(out), n_chars=sum(map(len, out)), n_docs=len(out), info=info
    )


# --------------------------------------------------------------------------------------------------------------
# Tokenization into windows
# --------------------------------------------------------------------------------------------------------------
def boundary_token_id(tokenizer: Any) -> int:
    """The token that starts every window and separates documents.

    ``<|endoftext|>`` when the vocabulary has it (SmolLM2, Pythia and GPT-2 all use it as the document boundary
    in pretraining), else the tokenizer's BOS, else its EOS.
    """
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"])
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ParameterError("the tokenizer has neither <|endoftext|>, a BOS nor an EOS token to mark document starts")


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ParameterError(f"parameter {name!r} must be an integer >= {lo}; got {value!r}")


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than the model maximum" does not apply: we cut windows
    try:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(old)


def tokenize_windows(
    corpus: Corpus, tokenizer: Any, ctx: int, n_train: int, n_test: int, seed: int
) -> dict[str, torch.Tensor]:
    """Fixed-length token windows for training and held-out evaluation, disjoint by document.

    Documents are shuffled with ``seed``; the first ones (in that order) make the test stream until it holds
    ``n_test`` windows, the rest make the train stream. Within a stream, documents are concatenated with the
    boundary token (``boundary_token_id``) between them and cut into consecutive windows of ``ctx - 1`` tokens,
    each prefixed with the boundary token, so every window starts as a document does in pretraining and position 0
    is the same token everywhere (its residual stream is an outlier; consumers may want to skip it). The test
    split does not depend on ``n_train``. Returns ``{"train": (n_train, ctx), "test": (n_test, ctx)}`` int64.
    """
    _check_int("ctx", ctx, 2)
    _check_int("n_train", n_train, 1)
    _check_int("n_test", n_test, 0)
    _check_int("seed", seed, 0)
    if not corpus.texts:
        raise ParameterError("parameter 'corpus' is empty: no documents to tokenize")
    bos = boundary_token_id(tokenizer)
    body = ctx - 1
    order = torch.randperm(len(corpus.texts), generator=torch.Generator().manual_seed(seed)).tolist()
    needs = {"test": n_test * body, "train": n_train * body}
    streams: dict[str, list[int]] = {"test": [], "train": []}
    split = "test" if needs["test"] > 0 else "train"
    total_tokens = 0
    chunk = 64
    for start in range(0, len(order), chunk):
        if split == "done":
            break
        idx = order[start : start + chunk]
        for ids in _encode(tokenizer, [corpus.texts[i] for i in idx]):
            total_tokens += len(ids) + 1
            if split == "done":
                continue
            stream = streams[split]
            if stream:
                stream.append(bos)
            stream.extend(ids)
            if len(stream) >= needs[split]:
                split = "train" if split == "test" else "done"
    if split != "done":
        have = {k: len(v) // body for k, v in streams.items()}
        raise ParameterError(
            f"not enough tokens: ctx={ctx}, n_train={n_train}, n_test={n_test} need about "
            f"{(n_train + n_test) * body:,} tokens (train and test split by document), but corpus "
            f"{corpus.source!r} ({corpus.n_docs} documents, {corpus.n_chars:,} chars) has {total_tokens:,} tokens "
            f"(with separators), enough for {have['test']} test and {have['train']} train windows. "
            "Lower n_train / n_test / ctx, or use a larger corpus."
        )
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        toks = torch.tensor(streams[name][: n * body], dtype=torch.long).view(n, body)
        out[name] = torch.cat([torch.full((n, 1), bos, dtype=torch.long), toks], dim=1)
    return out
