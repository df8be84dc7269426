"""The parameter framework: checkers, ``Param``, ``Config``, ``resolve``, and the registry of notebooks.

Each notebook's parameter table lives in its own module beside this one (``nb01_toy`` ... ``nb05_roc``). A
*profile* is a named parameter set: ``smoke`` (tiny, for tests), ``default`` (the embedded offline run on a laptop
CPU), ``paper`` (the papers' settings; GPU and network) and ``gpu`` (the offline model at the paper's SAE width on
one GPU, no network). ``gpu`` takes ``default``'s value of every parameter that does not set its own (``Param.gpu``).
"""

from __future__ import annotations

import ast
import difflib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rsae_utils.errors import ParameterError

PROFILES = ("smoke", "default", "paper", "gpu", "long")
# Profiles whose runs are sized for a GPU machine: an estimate of their resources is printed before they start.
LARGE_PROFILES = ("paper", "gpu")


class _Inherit:
    """``Param.gpu``'s default: the parameter takes its ``default``-profile value under ``gpu``."""

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Any = _Inherit()


# --------------------------------------------------------------------------------------------------------------
# Checkers: each takes (name, value) and raises ParameterError naming the parameter and the allowed values.
# --------------------------------------------------------------------------------------------------------------
Checker = Callable[[str, Any], None]


def _fail(name: str, allowed: str, value: Any, hint: str = "") -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}{hint}")


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def is_int(lo: int | None = None, hi: int | None = None) -> Checker:
    allowed = "an integer" + _range_text(lo, hi)

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, allowed, value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_float(lo: float | None = None, hi: float | None = None) -> Checker:
    allowed = "a number" + _range_text(lo, hi)

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(name, allowed, value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def one_of(choices: Iterable[Any]) -> Checker:
    choices = tuple(choices)
    allowed = "one of " + ", ".join(repr(c) for c in choices)

    def check(name: str, value: Any) -> None:
        if value not in choices:
            hint = suggest(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
            _fail(name, allowed, value, hint)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def list_of(item: Checker, min_len: int = 1, unique: bool = False) -> Checker:
    allowed = f"a list of at least {min_len} item(s), each {getattr(item, 'allowed', 'valid')}"
    if unique:
        allowed += ", without repeats"

    def check(name: str, value: Any) -> None:
        if not isinstance(value, (list, tuple)) or len(value) < min_len:
            _fail(name, allowed, value)
        for i, v in enumerate(value):
            item(f"{name}[{i}]", v)
        if unique and len(set(map(repr, value))) != len(value):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_bool() -> Checker:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, bool):
            _fail(name, "True or False", value)

    check.allowed = "True or False"  # type: ignore[attr-defined]
    return check


def is_str(nonempty: bool = True) -> Checker:
    allowed = "a non-empty string" if nonempty else "a string"

    def check(name: str, value: Any) -> None:
        if not isinstance(value, str) or (nonempty and not value.strip()):
            _fail(name, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def is_dict() -> Checker:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            _fail(name, "a dict", value)

    check.allowed = "a dict"  # type: ignore[attr-defined]
    return check


def optional(inner: Checker) -> Checker:
    allowed = f"None or {getattr(inner, 'allowed', 'a valid value')}"

    def check(name: str, value: Any) -> None:
        if value is not None:
            inner(name, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


# --------------------------------------------------------------------------------------------------------------
# Parameter and notebook specs
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One parameter: its value in each profile, how it is checked, and what it means."""

    name: str
    smoke: Any
    default: Any
    paper: Any
    check: Checker
    help: str = ""
    gpu: Any = INHERIT  # the gpu profile's value; INHERIT: the default profile's
    # The long profile's (a CPU run of hours: the training-budget study further up the curve); INHERIT: default's.
    long: Any = INHERIT

    def value(self, profile: str) -> Any:
        if profile == "gpu":
            return self.default if self.gpu is INHERIT else self.gpu
        if profile == "long":
            return self.default if self.long is INHERIT else self.long
        return {"smoke": self.smoke, "default": self.default, "paper": self.paper}[profile]


@dataclass(frozen=True)
class Notebook:
    params: Sequence[Param]
    # Cross-parameter checks: fn(cfg) raising ParameterError; run after every single-parameter check passed.
    checks: Sequence[Callable[[Config], None]] = ()
    # Notebooks whose outputs this one reads (the runner reruns it when they change).
    after: Sequence[str] = ()
    title: str = ""
    # Whether the runner first runs an ``after`` notebook that never ran under the profile. False for a notebook
    # that reports a missing input itself (10_claims marks its claims "not run") rather than needing every one.
    pull_upstream: bool = True

    def names(self) -> list[str]:
        return [p.name for p in self.params]


class Config(Mapping):
    """Read-only resolved parameters of one notebook run (attribute and mapping access)."""

    def __init__(self, notebook: str, profile: str, values: dict[str, Any], overridden: Sequence[str] = ()):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "notebook", notebook)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "overridden", tuple(overridden))
        # Wall-clock start of the run this config belongs to: figure manifests report the runtime from here.
        object.__setattr__(self, "started", time.time())

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.notebook} has no parameter {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is read-only: change OVERRIDES in the parameters cell instead")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able record: notebook, profile and every parameter value."""
        return {"notebook": self.notebook, "profile": self.profile, "params": dict(self._values)}

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{k}</code></td><td><code>{v!r}</code></td><td>{'override' if k in self.overridden else ''}"
            f"</td></tr>"
            for k, v in self._values.items()
        )
        return f"<b>{self.notebook}</b> &mdash; profile <code>{self.profile}</code><table>{rows}</table>"

    def __repr__(self) -> str:
        return f"Config({self.notebook!r}, profile={self.profile!r}, {self._values!r})"


def suggest(name: str, allowed: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" for the allowed name closest to a misspelt ``name``; "" when none is close."""
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def notebook_spec(notebook: str) -> Notebook:
    if notebook not in NOTEBOOKS:
        raise ParameterError(
            f"unknown notebook {notebook!r}{suggest(notebook, list(NOTEBOOKS))}; allowed: {', '.join(NOTEBOOKS)}"
        )
    return NOTEBOOKS[notebook]


def shared_param(notebook: str, name: str, **changes: Any) -> Param:
    """Parameter ``name`` of ``notebook`` (registered before), with ``changes`` (another help text, a long value):
    a later notebook that sets an earlier one's parameter declares it once, not again."""
    found = [p for p in notebook_spec(notebook).params if p.name == name]
    if not found:
        raise ParameterError(f"notebook {notebook!r} has no parameter {name!r}")
    return replace(found[0], **changes)


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ParameterError(
            f"parameter 'PROFILE' must be one of {', '.join(map(repr, PROFILES))}; got {profile!r}"
            f"{suggest(str(profile), PROFILES)}"
        )


def resolve(notebook: str, profile: str = "default", overrides: Mapping[str, Any] | None = None) -> Config:
    """Validated parameters of ``notebook`` under ``profile`` with ``overrides`` applied."""
    spec = notebook_spec(notebook)
    check_profile(profile)
    overrides = dict(overrides or {})
    names = spec.names()
    for key in overrides:
        if key not in names:
            raise ParameterError(
                f"unknown parameter {key!r} for notebook {notebook}{suggest(key, names)}; allowed: {', '.join(names)}"
            )
    values = {p.name: overrides.get(p.name, p.value(profile)) for p in spec.params}
    for p in spec.params:
        try:
            p.check(p.name, values[p.name])
        except ParameterError as err:
            where = "override" if p.name in overrides else f"profile {profile!r}"
            raise ParameterError(f"{notebook} ({where}): {err}") from None
    cfg = Config(notebook, profile, values, overridden=list(overrides))
    for check in spec.checks:
        try:
            check(cfg)
        except ParameterError as err:
            raise ParameterError(f"{notebook}: {err}") from None
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``name=value`` from the command line; the value is a Python literal, else a plain string."""
    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like NAME=VALUE (quote a value with spaces: name='a b')")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ParameterError(f"override {text!r}: {key!r} is not a parameter name")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        unclosed = _unclosed_bracket(raw)
        if unclosed:
            raise ParameterError(f"override {key}={raw}: the {unclosed!r} bracket is never closed") from None
        # A bracketed value was meant as a list or dict: a bare word inside it is the usual slip.
        if raw.strip()[:1] in "[({":
            raise ParameterError(
                f"override {key}={raw}: not a Python literal (strings inside a list need quotes, e.g. "
                f"variants=['trained'])"
            ) from None
        value = raw
    return key, value


_OPEN, _CLOSE = "[({", "])}"


def _unclosed_bracket(text: str) -> str | None:
    """The first bracket of ``text`` (outside quotes) that is never closed, or None."""
    stack, quote = [], ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(ch)
        elif ch in _CLOSE and stack and _OPEN.index(stack[-1]) == _CLOSE.index(ch):
            stack.pop()
    return stack[0] if stack else None


def split_overrides(text: str) -> list[str]:
    """Split ``SET``'s one string into ``NAME=VALUE`` items at whitespace outside quotes and brackets.

    ``"variants=['trained'] seeds=[0, 1]"`` gives two items, quotes kept, so each value stays a Python literal.
    (``shlex`` would drop the quotes and split ``[0, 1]``.)
    """
    items, cur, quote, depth = [], [], "", 0
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0:
            if cur:
                items.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if quote:
        raise ParameterError(f"SET {text!r} has an unclosed {quote} quote")
    if cur:
        items.append("".join(cur))
    return items


def parse_overrides(text: str | Sequence[str]) -> dict[str, Any]:
    """``{name: value}`` from SET's one string, or from a list of single ``NAME=VALUE`` items (``--set``, one per
    flag, not split further); a name given twice is refused."""
    items = split_overrides(text) if isinstance(text, str) else list(text)
    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_override(item)
        if key in out:
            raise ParameterError(f"parameter {key!r} is given twice in SET ({out[key]!r} and {value!r})")
        out[key] = value
    return out


# The registry: each notebook's table is defined in its own module of this package (rsae_utils.params.nbNN_*).
NOTEBOOKS: dict[str, Notebook] = {}


def register(notebook: str, spec: Notebook) -> Notebook:
    if notebook in NOTEBOOKS:
        raise ValueError(f"notebook {notebook!r} is registered twice")
    NOTEBOOKS[notebook] = spec
    return spec
