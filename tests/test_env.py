"""The environment files agree: environment.yml (conda/Binder) names the same versions as the pip lock."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#;]+)")


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_matches_requirements_in():
    env, direct = _pins(ROOT / "environment.yml"), _pins(ROOT / "requirements.in")
    assert direct, "requirements.in pins nothing"
    assert env == direct


def test_direct_pins_match_the_lock():
    lock, direct = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements.in")
    mismatched = {k: (v, lock.get(k)) for k, v in direct.items() if lock.get(k) != v}
    assert not mismatched, f"requirements.in and requirements.txt disagree: {mismatched}"


def test_lock_is_fully_pinned_and_cpu_torch_default():
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln]
    assert _pins(ROOT / "requirements.txt")["torch"] == "2.13.0"


def test_installed_versions_are_the_locked_ones():
    """The running environment is the locked one (a drifted venv would make figures irreproducible)."""
    import importlib.metadata as md

    for name, version in _pins(ROOT / "requirements.in").items():
        installed = md.version(name).split("+")[0]
        assert installed == version, f"{name}: installed {installed}, locked {version}"
