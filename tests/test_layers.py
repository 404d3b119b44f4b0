"""The package's layers (``racematrix/__init__.py``) hold: every import of
one racematrix module by another, function-level ones included, goes to the
same layer or a lower one, never in a circle, and drivers never import each
other. Read from the source with ``ast``, not by importing."""
import ast
from pathlib import Path

import pytest

import racematrix

PACKAGE = Path(racematrix.__file__).parent


def imports_of(source, module):
    """The racematrix modules that ``source`` (module ``module``) imports,
    anywhere in it, with the line of each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.append((node.module.split(".")[0], node.lineno))
            elif node.level == 1:  # from . import x, y
                found += [(alias.name, node.lineno) for alias in node.names]
            elif node.module and node.module.split(".")[0] == "racematrix":
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.append((parts[1], node.lineno))
                else:
                    found += [(alias.name, node.lineno)
                              for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[1], node.lineno)
                      for alias in node.names
                      if alias.name.startswith("racematrix.")]
    return [(name, line) for name, line in found if name != module]


def import_graph(folder):
    return {path.stem: imports_of(path.read_text(), path.stem)
            for path in sorted(Path(folder).glob("*.py"))
            if path.stem != "__init__"}


def layering_problems(graph, layers, sealed):
    """Every broken rule, one line each: a module without a layer, an
    import up the layers or across a sealed one, and every circle."""
    problems = [f"{module}: not in the layer table of racematrix/__init__.py"
                for module in graph if module not in layers]
    for module, imports in graph.items():
        for name, line in imports:
            if module not in layers or name not in layers:
                continue
            if layers[name] > layers[module]:
                problems.append(f"{module}.py:{line} imports {name}, which is "
                                f"layer {layers[name]}, above its own "
                                f"{layers[module]}")
            elif layers[name] == layers[module] in sealed:
                problems.append(f"{module}.py:{line} imports {name}: drivers "
                                f"(layer {layers[module]}) never import "
                                f"each other")
    problems += [f"circle: {' -> '.join(cycle)}"
                 for cycle in find_cycles(graph)]
    return problems


def find_cycles(graph):
    """One circle per strongly connected part with more than one module
    (Tarjan), as the modules in order."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    edges = {m: sorted({n for n, _ in imports if n in graph})
             for m, imports in graph.items()}

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for name in edges[module]:
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in on_stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            part = []
            while True:
                name = stack.pop()
                on_stack.discard(name)
                part.append(name)
                if name == module:
                    break
            if len(part) > 1:
                cycles.append(sorted(part) + [sorted(part)[0]])

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_the_package_keeps_its_layers():
    graph = import_graph(PACKAGE)
    assert graph, "no module found"
    assert layering_problems(graph, racematrix.LAYERS,
                             racematrix.SEALED_LAYERS) == []


def test_every_module_in_the_table_exists():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert set(racematrix.LAYERS) <= modules


def test_a_planted_upward_import_is_caught(tmp_path):
    for path in PACKAGE.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    stats = tmp_path / "stats.py"
    # Inside a function, where an import-time check would never see it.
    stats.write_text(stats.read_text() + "\n\ndef planted():\n"
                     "    from .report import build_report\n"
                     "    return build_report\n")
    problems = layering_problems(import_graph(tmp_path), racematrix.LAYERS,
                                 racematrix.SEALED_LAYERS)
    assert any("stats.py" in line and "imports report" in line
               for line in problems), problems


def test_a_planted_circle_and_a_driver_import_are_caught(tmp_path):
    graph = {"search": [("race_search", 3)], "race_search": [("search", 1)],
             "bench": [("ci", 2)], "ci": []}
    problems = layering_problems(graph, racematrix.LAYERS,
                                 racematrix.SEALED_LAYERS)
    assert "circle: race_search -> search -> race_search" in problems
    assert any("bench.py:2 imports ci: drivers" in line for line in problems)


@pytest.mark.parametrize("source, expected", [
    ("from . import stats, tables", ["stats", "tables"]),
    ("from .stats import quantile", ["stats"]),
    ("from racematrix.tables import make_row", ["tables"]),
    ("import racematrix.report", ["report"]),
    ("def f():\n    from .report import build_report", ["report"]),
    ("import json\nfrom packaging.version import Version", []),
])
def test_imports_are_read_in_every_form(source, expected):
    assert [name for name, _ in imports_of(source, "x")] == expected
