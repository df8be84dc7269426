"""The package's layout keeps its promises (README, "How the code is organised"): no import cycle, parameter tables
above the code they configure, figures drawn only in ``plots/``, imports at module top, modules of a readable size.

Static: the import graph is read from the source with ``ast`` (no module is imported), so the test is fast and
names the offending line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "rsae_utils"
COMPUTE = ("rsae_utils.subject", "rsae_utils.sae", "rsae_utils.toys", "rsae_utils.autointerp", "rsae_utils.claims")
MAX_LINES = 480  # formatted by ruff format (one argument a line where a call overflows)
# Imports deliberately made inside a function: (module, imported name) -> why.
DEFERRED = {
    ("rsae_utils.nbrun", "jupytext"): "a bad parameter must fail before seconds of imports",
    ("rsae_utils.nbrun", "papermill"): "same",
    ("rsae_utils.nbrun", "papermill.exceptions"): "same",
    ("rsae_utils.runguard", "jupyter_client"): "same (the kernel manager is only needed once a kernel starts)",
    ("rsae_utils.__main__", "rsae_utils.nbrun"): "inside try: a Ctrl-C during the runner's imports ends in one line",
    ("rsae_utils.subject.hf_text", "datasets"): "only hub corpora need it",
    ("rsae_utils.sae.jobs", "submitit"): "only executor != 'local' needs it (an optional dependency)",
    # transformer-lens takes ~3 s to import; the parameter module (every notebook's first cell) reads the model
    # names' checks from here, and notebooks 01, 02 and 10 never load a model.
    ("rsae_utils.subject.models", "transformer_lens"): "only loading a model or a hub name's check needs it",
    ("rsae_utils.subject.models", "transformer_lens.pretrained.weight_conversions"): "same",
    ("rsae_utils.subject.models", "transformers"): "same (AutoTokenizer, for a hub model's tokenizer)",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top?) for every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno, id(node) in top))
            # "from rsae_utils.sae import cache" imports the submodule too
            out += [
                (f"{node.module}.{a.name}", node.lineno, id(node) in top)
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            ]
    return out


def _internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        deps = {m for m, _, _ in _imports(name) if m in MODULES and m != name}
        graph[name] = deps
    return graph


def test_no_import_cycle():
    graph = _internal_graph()
    # A package's __init__ is imported before any of its modules; an edge from a module to its own package's
    # __init__ is therefore not a cycle of ours unless the __init__ imports back, which the DFS below catches.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        for d in graph[n]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_compute_modules_draw_nothing_and_read_no_parameter_tables():
    graph = _internal_graph()
    for name in MODULES:
        if not name.startswith(COMPUTE):
            continue
        for mod, line, _ in _imports(name):
            assert mod.split(".")[0] not in ("matplotlib", "plotly"), f"{name}:{line} imports {mod}: draw in plots/"
        reached = _closure(name, graph)
        assert not any(m.startswith("rsae_utils.plots") for m in reached), f"{name} reaches plots/: {sorted(reached)}"
        assert not any(m.startswith("rsae_utils.params") for m in reached), (
            f"{name} reaches the parameter tables; they sit above the code they configure"
        )


def test_figures_are_drawn_only_in_plots():
    for name in MODULES:
        if name.startswith("rsae_utils.plots"):
            continue
        for mod, line, _ in _imports(name):
            assert mod.split(".")[0] not in ("matplotlib", "plotly"), f"{name}:{line} imports {mod}"


def test_imports_at_module_top_unless_listed():
    for name in MODULES:
        for mod, line, at_top in _imports(name):
            if not at_top:
                assert (name, mod) in DEFERRED, f"{name}:{line} imports {mod} inside a function; move it to the top"


def test_modules_stay_readable():
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert max(long.values()) <= MAX_LINES, {n: k for n, k in long.items() if k > MAX_LINES}


def test_every_package_folder_is_a_regular_package():
    """setuptools only ships folders with an __init__.py; a namespace folder would vanish from a built wheel."""
    for folder in [PKG, *[p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), folder


MAX_FUNCTION_LINES = 80


def test_long_functions_say_why_in_their_docstring():
    """A function over ~80 lines is a sign of several steps in one; where it is one step, its docstring says why
    ("Long because ...")."""
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, long


def test_no_fmt_skip_markers():
    """Code is formatted by ruff format; lines are not packed by hand behind ``# fmt: skip``."""
    root = PKG.parent
    hits = [
        f"{p.relative_to(root)}:{i}"
        for folder in ("rsae_utils", "tests", "benchmarks", "notebooks")
        for p in (root / folder).glob("**/*.py")
        if "executed" not in p.parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if p.name != "test_layout.py" and re.search(r"#\s*fmt:\s*(skip|off)", line)
    ]
    assert not hits, hits
