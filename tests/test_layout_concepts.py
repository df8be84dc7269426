"""Each concept of the SAE stage is written once (static, read with ``ast``; nothing is imported):

* no module of the package imports another module's private name (``from <module> import _name``);
* no architecture or trainer is chosen by comparing its name with a string (``spec.trainer == "fast"``): call
  sites ask the registries (``sae.spec.ARCHITECTURES``, ``sae.trainers.trainer_for``);
* the learning-rate rule, the SAE folder name, ``unit_rows`` and the check of notebook 03's caches are each
  defined exactly once, and the names that used to repeat them delegate to that one definition.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "rsae_utils"
FILES = sorted(PKG.rglob("*.py"))
TREES = {p: ast.parse(p.read_text()) for p in FILES}
CHOOSERS = ("architecture", "trainer")


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PKG.parent)}:{node.lineno}"


def _defs(name: str) -> list[str]:
    return [
        _where(p, n)
        for p, tree in TREES.items()
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
    ]


def _function(name: str) -> ast.FunctionDef:
    (found,) = [
        n for tree in TREES.values() for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name
    ]
    return found


def _calls(fn: ast.AST) -> set[str]:
    return {
        c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
        for c in ast.walk(fn)
        if isinstance(c, ast.Call)
    }


def test_no_private_name_is_imported_across_modules():
    bad = [
        f"{_where(p, n)} imports {a.name} from {n.module}"
        for p, tree in TREES.items()
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("rsae_utils")
        for a in n.names
        if a.name.startswith("_")
    ]
    assert not bad, bad


def _names_a_chooser(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):  # sae-lens's cfg.architecture()
        node = node.func
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name in CHOOSERS


def test_no_architecture_or_trainer_is_chosen_by_string_comparison():
    bad = []
    for p, tree in TREES.items():
        for n in ast.walk(tree):
            if not isinstance(n, ast.Compare):
                continue
            sides = [n.left, *n.comparators]
            literal = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
            if literal and any(_names_a_chooser(s) for s in sides):
                bad.append(f"{_where(p, n)}: {ast.unparse(n)}")
    assert not bad, bad


def test_the_shared_concepts_are_defined_once():
    for name in ("paper_lr", "sae_name", "unit_rows", "require_caches", "SAESpec", "trainer_for"):
        assert len(_defs(name)) == 1, (name, _defs(name))
    # The names that used to repeat them are gone or delegate to them.
    for gone in ("_unit_rows", "require_base_caches", "dead_threshold", "_train_fast"):
        assert not _defs(gone), (gone, _defs(gone))
    assert "paper_lr" in _calls(_function("width_lr"))
    assert "sae_name" in _calls(_function("seed_sae_name"))
    assert "sae_name" in _calls(_function("name"))  # SweepSpec.name (the only property called name)


def test_the_learning_rate_rule_is_written_in_one_place():
    """No other function divides by sqrt(d_sae / 2**14): the rule's constant appears only in ``paper_lr``."""
    rule = _function("paper_lr")
    inside = {id(n) for n in ast.walk(rule)}
    bad = [
        _where(p, n)
        for p, tree in TREES.items()
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp)
        and isinstance(n.op, ast.Pow)
        and ast.unparse(n) == "2 ** 14"
        and id(n) not in inside
    ]
    assert not bad, bad


def test_trainer_and_architecture_registries_agree():
    """Every trainer name has its code, and every architecture a trainer names is registered (read statically:
    the registries are dict literals keyed by the same constants)."""
    spec = TREES[PKG / "sae" / "spec.py"]
    trainers = TREES[PKG / "sae" / "trainers.py"]

    def dict_keys(tree: ast.Module, target: str) -> set[str]:
        for n in tree.body:
            if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", None) == target:
                return {ast.unparse(k) for k in n.value.keys}
        raise AssertionError(f"no {target} registry")

    assert dict_keys(spec, "TRAINERS") == dict_keys(trainers, "TRAINER_CODE") == {"FAST", "SAE_LENS"}
    assert dict_keys(spec, "ARCHITECTURES") == {"TOPK", "RELU"}
