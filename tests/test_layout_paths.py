"""Every artifact location is a function of ``rsae_utils/paths.py`` (README, "How the code is organised"): callers
name what identifies an artifact, never how its folder is spelled, and notebooks read like the paper (calls into
``rsae_utils``, no lambdas, no path assembly).

Static, with ``ast``: nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "rsae_utils"
PATHS = PKG / "paths.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

# (module, the function it happens in) -> why joining a literal onto a location from paths is fine there. Files
# *inside* an artifact folder (``records.json``, ``stats.csv``) need no entry: they are joined onto the folder the
# store hands to its ``build``, which comes from no ``paths`` call.
ALLOWED: dict[tuple[str, str], str] = {
    ("rsae_utils/nbrun.py", "_code_fingerprint"): "the package's own sources (hashed into the stamp), not an artifact",
    ("rsae_utils/sae/jobs.py", "run_variant_jobs"): "submitit's per-job log folder pattern ('%j'), not an artifact",
}


def _paths_functions() -> set[str]:
    tree = ast.parse(PATHS.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


PATH_FUNCTIONS = _paths_functions()


def _is_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _from_paths(tree: ast.Module) -> set[str]:
    """Local names bound to ``rsae_utils.paths`` itself or to its functions, in ``tree``'s imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "rsae_utils.paths":
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "rsae_utils":
            names |= {a.asname or a.name for a in node.names if a.name == "paths"}
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "rsae_utils.paths" and a.asname}
    return names


def _calls_paths(node: ast.AST, local: set[str]) -> bool:
    """Does ``node`` contain a call of a paths function (``paths.x(...)``, or ``x(...)`` imported from paths)?"""
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call):
            continue
        f = sub.func
        if isinstance(f, ast.Name) and f.id in local and f.id in PATH_FUNCTIONS:
            return True
        named = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in local
        if named and f.attr in PATH_FUNCTIONS:
            return True
    return False


def _joins(tree: ast.Module) -> list[tuple[ast.AST, ast.AST, int]]:
    """(left, right, line) of every path join: ``a / b`` and ``a.joinpath(b, ...)``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            out.append((node.left, node.right, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "joinpath":
            out += [(node.func.value, a, node.lineno) for a in node.args]
    return out


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """line -> the name of the innermost function around it ('' at module level)."""
    where: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                line = getattr(sub, "lineno", None)
                if line is not None and (line not in where or node.lineno > where[line][1]):
                    where[line] = (node.name, node.lineno)
    return {line: name for line, (name, _) in where.items()}


def _literal_joins_on_paths(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    local = _from_paths(tree)
    if not local:
        return []
    func = _enclosing_functions(tree)
    rel = path.relative_to(ROOT).as_posix()
    return [
        f"{rel}:{line} joins a literal onto a location from paths: add a function to paths.py"
        for left, right, line in _joins(tree)
        if _is_literal(right) and _calls_paths(left, local) and (rel, func.get(line, "")) not in ALLOWED
    ]


# --------------------------------------------------------------------------------------------------------------
# (a) paths.py: every function names what identifies its artifact
# --------------------------------------------------------------------------------------------------------------
def test_no_paths_function_takes_varargs():
    tree = ast.parse(PATHS.read_text())
    bad = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and (n.args.vararg or n.args.kwarg)]
    assert not bad, f"paths.{bad} take *parts / **kw: give each artifact its own function and arguments"


# --------------------------------------------------------------------------------------------------------------
# (b) notebooks: no lambdas, no path assembly
# --------------------------------------------------------------------------------------------------------------
def test_notebooks_have_no_lambdas():
    bad = []
    for nb in NOTEBOOKS:
        tree = ast.parse(nb.read_text())
        bad += [f"{nb.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    assert not bad, f"lambdas in notebooks (move the plumbing into rsae_utils): {bad}"


def test_notebooks_assemble_no_paths():
    """A notebook joins nothing onto a folder: no ``x / "name"`` or ``.joinpath(...)`` at all (a string on the
    right of ``/`` can only be a path join), and no ``paths.x(...) / y``."""
    bad = []
    for nb in NOTEBOOKS:
        tree = ast.parse(nb.read_text())
        local = _from_paths(tree)
        for left, right, line in _joins(tree):
            if _is_literal(right) or _calls_paths(left, local):
                bad.append(f"{nb.name}:{line}")
        bad += [
            f"{nb.name}:{n.lineno} (joinpath)"
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr == "joinpath"
        ]
    assert not bad, f"path assembly in notebooks (use a paths.* function): {bad}"


# --------------------------------------------------------------------------------------------------------------
# (c) the package: no literal joined onto a location that came from paths in the same expression
# --------------------------------------------------------------------------------------------------------------
def test_no_module_joins_a_literal_onto_a_paths_location():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path != PATHS:
            bad += _literal_joins_on_paths(path)
    assert not bad, "\n".join(bad)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The detectors above find the patterns they forbid (else the tests pass vacuously)."""
    src = tmp_path / "m.py"
    src.write_text(
        "from rsae_utils import paths\n"
        "from rsae_utils.paths import work_dir\n"
        "a = paths.why_default_dir('p') / 'gaps.csv'\n"
        "b = work_dir('p') / f'{1}.csv'\n"
        "c = paths.critique_dir('p').joinpath('tables')\n"
        "d = paths.critique_table('p', 'x')\n"
    )
    tree = ast.parse(src.read_text())
    local = _from_paths(tree)
    hits = [line for left, right, line in _joins(tree) if _is_literal(right) and _calls_paths(left, local)]
    assert hits == [3, 4, 5]
    tree = ast.parse("def f(*parts):\n    pass\n")
    assert tree.body[0].args.vararg is not None
