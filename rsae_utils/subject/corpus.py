"""Text corpora: the sources ``load_corpus`` understands (tokenization into windows: ``subject.windows``).

Sources (``load_corpus(source)``):

* ``"site-packages"`` (offline default): the human-written English installed with the Python environment
  itself: the long descriptions in ``*.dist-info/METADATA`` (package READMEs) and ``.md``/``.rst``/``.txt``
  documentation files, optionally docstrings (gathered and filtered in ``subject.site_packages``).
* ``"hf:<dataset>[:split]"``: a Hugging Face dataset with a ``text`` or ``raw_content`` column, streamed (network,
  or a local mirror), the split optionally sliced (``train[:15%]``; ``subject.hf_text``); the paper's is
  ``hf:EleutherAI/rpj-v2-sample:train[:15%]`` (held out: ``train[25%:30%]``).
* ``"dir:<path>"``: every ``*.txt`` file (one document each) and ``*.jsonl`` file (one document per line, its
  ``"text"`` or ``"raw_content"`` field) under a local folder, in sorted path order.

Every source is normalised the same way (Unicode NFC, ``\\n`` line ends, no trailing spaces, at most one blank
line in a row) and deduplicated by document hash. ``Corpus.sha256`` hashes the normalised documents in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsae_utils.errors import ParameterError
from rsae_utils.subject.hf_text import gather_hf, parse_split
from rsae_utils.subject.site_packages import cached_site_packages, gather_site_packages
from rsae_utils.subject.text import TEXT_FIELDS, corpus_sha256, normalise, row_text, text_hash

SOURCES_HELP = (
    "'site-packages' (offline default: documentation installed with the environment), 'site-packages+docstrings' "
    "(the same plus docstrings: ~30x larger, more technical), "
    "'hf:<dataset>[:split]' (network, e.g. 'hf:EleutherAI/rpj-v2-sample:train[:15%]'), "
    "or 'dir:<folder of .txt / .jsonl files>'"
)


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
        return {
            "source": self.source,
            "sha256": self.sha256,
            "n_chars": self.n_chars,
            "n_docs": self.n_docs,
            **self.info,
        }


# --------------------------------------------------------------------------------------------------------------
# Normalisation, hashing, filters
# --------------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------------
# Other sources
# --------------------------------------------------------------------------------------------------------------
# A text file whose decoded text has more than this share of U+FFFD (undecodable bytes) or NULs is not text.
MAX_BAD_CHAR_SHARE = 0.01
PROBE_BYTES = 1 << 16


def _dir_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".jsonl"))


def _not_text(path: Path, text: str) -> None:
    """Refuse a file that decodes to mostly replacement characters or NULs (a binary file named .txt)."""
    bad = text.count("\ufffd") + text.count("\x00")
    if text and bad > MAX_BAD_CHAR_SHARE * len(text):
        raise ParameterError(
            f"parameter 'corpus': file {path} is not UTF-8 text ({bad:,} of {len(text):,} characters undecodable "
            f"or NUL); remove it from the folder or convert it"
        )


def probe_dir_corpus(folder: Path) -> None:
    """Cheap check of a ``dir:`` corpus before any work: some ``.txt``/``.jsonl`` file, the first 64 KiB of each
    decoding as text, and some text in all of them together."""
    files = _dir_files(folder)
    if not files:
        raise ParameterError(f"parameter 'corpus' = 'dir:{folder}': the folder has no .txt or .jsonl files")
    has_text = False
    for path in files:
        with path.open("rb") as fh:
            head = fh.read(PROBE_BYTES).decode("utf-8", errors="replace")
        _not_text(path, head.removesuffix("\ufffd"))  # a multi-byte character cut at the probe's end is fine
        if path.suffix.lower() == ".txt":
            has_text = has_text or bool(head.strip())
        elif "\n" not in head.rstrip("\n") and len(head) >= PROBE_BYTES // 4:
            has_text = True  # one row longer than the probe: the loader checks it in full
        else:
            for line in head.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if (row_text(row) or "").strip():
                    has_text = True
                    break
    if not has_text:
        raise ParameterError(
            f"parameter 'corpus' = 'dir:{folder}': its {len(files)} file(s) hold no text (empty, or .jsonl rows "
            "without a non-empty 'text' field)"
        )


def _gather_dir(folder: Path) -> tuple[list[str], dict]:
    files = _dir_files(folder)
    texts: list[str] = []
    for path in files:
        if path.suffix.lower() == ".txt":
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
            _not_text(path, texts[-1])
            continue
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ParameterError(f"corpus file {path}, line {lineno}: not JSON ({err})") from err
                text = row_text(row)
                if text is None:
                    raise ParameterError(f"corpus file {path}, line {lineno}: needs a string field among {TEXT_FIELDS}")
                texts.append(text)
                _not_text(path, texts[-1])
    return texts, {"n_files": len(files)}


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------
def probe_corpus(source: Any) -> tuple[str, str]:
    """:func:`validate_corpus_source` plus, for a local folder, a cheap look at its files (see
    :func:`probe_dir_corpus`): what the parameter checks run before any kernel starts."""
    kind, arg = validate_corpus_source(source)
    if kind == "dir":
        probe_dir_corpus(Path(arg))
    return kind, arg


def validate_corpus_source(source: Any) -> tuple[str, str]:
    """(kind, argument) of a corpus source string; ParameterError naming the allowed forms."""
    if not isinstance(source, str) or not source.strip():
        raise ParameterError(f"parameter 'corpus' must be {SOURCES_HELP}; got {source!r}")
    if source in ("site-packages", "site-packages+docstrings"):
        return source, ""
    kind, _, arg = source.partition(":")
    if kind == "hf" and arg.strip():
        parse_split(arg.strip().partition(":")[2] or "train")  # a bad split fails here, before any download
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
            texts, info = cached_site_packages(include_docstrings, min_doc_chars)
        else:
            texts, info = gather_site_packages(include_docstrings, min_doc_chars)
    elif kind == "dir":
        texts, info = _gather_dir(Path(arg))
    else:
        name, _, split = arg.partition(":")
        texts, info = gather_hf(name, split or "train", max_chars)
    # Every source: normalised, empty documents dropped, exact duplicates dropped (first occurrence kept).
    out, seen, n_dup = [], set(), 0
    for t in texts:
        t = normalise(t)
        if not t:
            continue
        h = text_hash(t)
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
