"""The layout between packages (README, "How the code is organised"): no cycle between packages, studies that never
read one another, figures drawn in ``plots/`` from tables computed elsewhere, and the claims reading the upstream
tables through the one registry of names (``rsae_utils.names``).

Static, like ``tests/test_layout.py`` (whose import reader it shares): the source is read with ``ast``, nothing is
imported except the registry itself (a module of constants).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from test_layout import MODULES, PKG, _imports

from rsae_utils.names import TABLES

NOTEBOOKS = PKG.parent / "notebooks"
# The compute packages a figure module may take constants and types from (never a function that computes).
COMPUTE = ("rsae_utils.autointerp", "rsae_utils.sae", "rsae_utils.toys", "rsae_utils.studies", "rsae_utils.claims")
# Modules whose whole purpose is statistics: plots/ imports none of them.
STATISTICS = (
    "rsae_utils.autointerp.stats",
    "rsae_utils.tokenstats",
    "rsae_utils.claims.rules",
    "rsae_utils.studies.critique.positional_stats",
    "numpy.random",
    "scipy",
    "sklearn",
    "statsmodels",
)
# Names of functions that compute tables or intervals; plots/ defines and calls none.
STAT_FUNCTION = re.compile(r"bootstrap|_tables?$|^tables?_|summary|_ci$|^ci_|auroc_replicates|default_rng")
# Methods that estimate a spread (an interval is computed from them), not a display aggregate like a mean.
SPREAD_METHODS = {"std", "sem", "var", "quantile", "percentile", "corr"}


def package_of(module: str) -> str:
    """The package node of a module: ``rsae_utils.studies.<study>``, ``rsae_utils.<subpackage>``, or the
    top-level module itself (``rsae_utils.paths``, ``rsae_utils.names``, ``rsae_utils`` for the root __init__)."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "studies":
        return ".".join(parts[:3])
    if len(parts) >= 2 and MODULES.get(".".join(parts[:2]), Path()).name == "__init__.py":
        return ".".join(parts[:2])
    return module


def package_graph() -> dict[str, dict[str, list[str]]]:
    """{package: {package it imports: ["module:line", ...]}} over every internal import."""
    graph: dict[str, dict[str, list[str]]] = {}
    for name in MODULES:
        src = package_of(name)
        graph.setdefault(src, {})
        for mod, line, _ in _imports(name):
            if mod in MODULES and package_of(mod) != src:
                graph[src].setdefault(package_of(mod), []).append(f"{name}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, {})):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_package_graph_has_the_expected_nodes():
    nodes = set(package_graph())
    for expected in (
        "rsae_utils.subject",
        "rsae_utils.sae",
        "rsae_utils.autointerp",
        "rsae_utils.toys",
        "rsae_utils.studies.why",
        "rsae_utils.studies.seeds",
        "rsae_utils.studies.critique",
        "rsae_utils.studies.roc",
        "rsae_utils.claims",
        "rsae_utils.params",
        "rsae_utils.plots",
        "rsae_utils.paths",
        "rsae_utils.tokenstats",
        "rsae_utils.names",
    ):
        assert expected in nodes, expected
    assert package_of("rsae_utils.autointerp.llm.spec") == "rsae_utils.autointerp"


def test_find_cycle_finds_a_known_cycle():
    assert find_cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": []}, "b": {}, "c": {"a": []}}) is None


def test_no_cycle_between_packages():
    """A module-level DAG can still tie two packages together (a.x -> b.y -> a.z); here neither may lean on the
    other both ways, so each package can be read, tested and moved as a unit."""
    graph = package_graph()
    cycle = find_cycle(graph)
    if cycle:
        edges = [f"{a} -> {b} ({', '.join(graph[a][b][:2])})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("package cycle:\n  " + "\n  ".join(edges))


def test_leaf_modules_import_nothing_of_ours():
    """The token statistics and the registry of names sit under every stage and study: they import no package."""
    for leaf in ("rsae_utils.tokenstats", "rsae_utils.names"):
        ours = [m for m, _, _ in _imports(leaf) if m.startswith("rsae_utils")]
        assert not ours, f"{leaf} imports {ours}"


def test_a_study_never_imports_another_study():
    for name in MODULES:
        if not name.startswith("rsae_utils.studies."):
            continue
        own = package_of(name)
        for mod, line, _ in _imports(name):
            if mod.startswith("rsae_utils.studies.") and package_of(mod) != own:
                raise AssertionError(f"{name}:{line} imports {mod}: a study reads the stages, never another study")


def _plots_modules() -> list[str]:
    return [n for n in MODULES if n.startswith("rsae_utils.plots")]


def test_plots_import_no_statistics():
    for name in _plots_modules():
        for mod, line, _ in _imports(name):
            assert not any(mod == s or mod.startswith(s + ".") for s in STATISTICS), (
                f"{name}:{line} imports {mod}: compute the table in its study and draw it in plots/"
            )
        tree = ast.parse(MODULES[name].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(COMPUTE):
                # constants and types (VIEWS, LatentRecord) only; a function imported from a stage computes
                funcs = [a.name for a in node.names if not a.name[:1].isupper()]
                assert not funcs, f"{name}:{node.lineno} imports {funcs} from {node.module}: plots/ draws tables"
            if isinstance(node, ast.Attribute) and node.attr == "random":
                raise AssertionError(f"{name}:{node.lineno} uses a random generator: resampling belongs to a study")


def test_plots_define_and_call_no_statistics():
    for name in _plots_modules():
        tree = ast.parse(MODULES[name].read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not STAT_FUNCTION.search(node.name), (
                    f"{name}:{node.lineno} defines {node.name}(): a table builder belongs in studies/ (or its stage)"
                )
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                assert called not in SPREAD_METHODS and not STAT_FUNCTION.search(called), (
                    f"{name}:{node.lineno} calls {called}(): intervals and correlations are computed with the table"
                )
            if isinstance(node, ast.Constant) and node.value == 1.96:
                raise AssertionError(f"{name}:{node.lineno} builds a normal interval (1.96): compute it in the table")


def test_the_statistics_of_notebook_05_live_in_its_study():
    """Notebook 05's tables come from studies/roc; plots/autointerp only draws (the check above, on a known case)."""
    tree = ast.parse(MODULES["rsae_utils.studies.roc.tables"].read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"roc_tables", "latent_summary", "entropy_auroc_table", "gap_table"} <= defined
    plotted = {n.name for n in ast.parse(MODULES["rsae_utils.plots.autointerp"].read_text()).body if hasattr(n, "name")}
    assert not plotted & defined


# ---------------------------------------------------------------------------------------------- the registry
def _string_constants(path: Path) -> list[tuple[str, int]]:
    return [
        (n.value, n.lineno)
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_claims_name_upstream_tables_only_through_the_registry():
    spelled = {k: k for k in TABLES} | {f"{k}{ext}": k for k in TABLES for ext in (".csv", ".png", ".manifest.json")}
    for path in sorted((PKG / "claims").glob("*.py")):
        for value, line in _string_constants(path):
            assert value not in spelled, (
                f"{path.name}:{line} spells the table {value!r}: use rsae_utils.names.{_constant(spelled[value])}"
            )


def test_claims_open_tables_by_registered_name():
    """Every ``inp.table / has / params / manifest`` call in the claims passes a name (a registry constant), never
    a string; and every claim's inputs are registered tables."""
    from rsae_utils.claims import CLAIMS

    for path in sorted((PKG / "claims").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("table", "has", "params", "manifest")
                and node.args
            ):
                assert not isinstance(node.args[0], ast.Constant), f"{path.name}:{node.lineno} opens a table by string"
    for c in CLAIMS:
        assert set(c.inputs) <= set(TABLES), (c.id, c.inputs)
        assert c.notebook == TABLES[c.inputs[0]].producer()


def _constant(table: str) -> str:
    import rsae_utils.names as N

    return next(k for k, v in vars(N).items() if k.isupper() and v == table)


def test_producers_save_under_the_registered_names():
    """Each registered table's notebook writes it through the constant (``names.X``), and no notebook spells a
    registered name as a string (the claims would not see a renamed figure)."""
    sources = {p.stem: p.read_text() for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")}
    for table, spec in TABLES.items():
        assert spec.notebook in sources, f"{table}: no notebook {spec.notebook}"
        assert f"names.{_constant(table)}" in sources[spec.notebook], f"{spec.notebook} does not save {table}"
    for stem, text in sources.items():
        for table in TABLES:
            if table == stem:
                continue  # a notebook's own name (resolve("07_seed_stability", ...)) is not its table's
            assert f'"{table}"' not in text, f"notebook {stem} spells the table {table!r}: use rsae_utils.names"


def test_notebook_10_reruns_after_every_producer():
    from rsae_utils.params import NOTEBOOKS as PARAMS

    after = set(PARAMS["10_claims"].after)
    assert {t.notebook for t in TABLES.values()} <= after and {
        t.upstream for t in TABLES.values() if t.upstream
    } <= after
