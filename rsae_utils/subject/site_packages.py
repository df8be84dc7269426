"""The offline text source: the human-written English installed with the Python environment itself.

Package READMEs (the long descriptions in ``*.dist-info/METADATA``), ``.md``/``.rst``/``.txt`` documentation
files and optionally docstrings, gathered deterministically (sorted paths), lightly cleaned (markdown/rst links and
images, HTML tags, fenced code blocks), filtered paragraph by paragraph with simple heuristics (enough words,
mostly letters, enough English function words, no license boilerplate, no code prompts), deduplicated by
paragraph and by document content hash. The contributing packages and their versions are recorded: two machines
get the same corpus (same sha256) exactly when they have the same package versions.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import inspect
import os
import re
import sysconfig
from pathlib import Path

from rsae_utils.paths import corpus_cache_dir
from rsae_utils.repro import stable_hash
from rsae_utils.store import cached_artifact, read_json, write_json
from rsae_utils.subject.text import normalise, text_hash

# Bumped whenever gathering or filtering changes, so results keyed on a corpus are not silently reused.
FILTER_VERSION = "site-packages-v2"

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
        key = text_hash(re.sub(r"\s+", " ", para.lower()))
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


def gather_site_packages(include_docstrings: bool, min_doc_chars: int) -> tuple[list[str], dict]:
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
            h = text_hash(text)
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


def cached_site_packages(include_docstrings: bool, min_doc_chars: int) -> tuple[list[str], dict]:
    env = environment_fingerprint()
    params = {
        "filter_version": FILTER_VERSION,
        "docstrings": include_docstrings,
        "min_doc_chars": min_doc_chars,
        "environment": env,
    }

    def build(tmp: Path) -> dict:
        texts, info = gather_site_packages(include_docstrings, min_doc_chars)
        write_json(tmp / "texts.json", texts)
        return {"info": info}

    path = cached_artifact(corpus_cache_dir(stable_hash(params)), params, build)
    manifest = read_json(path / "manifest.json")
    return read_json(path / "texts.json"), dict(manifest["info"])
