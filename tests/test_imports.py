"""One import direction: no two project modules import each other, directly or around a cycle, and the grid's
vocabulary is a leaf."""

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pretraining_gap"


def module_name(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(file: Path) -> set[str]:
    """The project modules `file` imports, at any depth in the file (lazy imports count too)."""
    name, found = module_name(file), set()
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            if node.level == 0 and not target.startswith("pretraining_gap"):
                continue
            for alias in node.names:  # `from . import x` imports the module x
                candidate = f"{target}.{alias.name}"
                found.add(
                    candidate
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                    else target
                )
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pretraining_gap")}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    return {module_name(file): project_imports(file) for file in PACKAGE.rglob("*.py")}


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 15
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_the_grid_vocabulary_is_a_leaf():
    graph = import_graph()
    assert graph["pretraining_gap.grid"] == set()
    assert "pretraining_gap.grid" in graph["pretraining_gap.config"]


def test_the_training_code_does_not_reach_into_the_driver_or_the_analysis():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("pretraining_gap.training")):
        assert not any(
            m.startswith(
                (
                    "pretraining_gap.analysis",
                    "pretraining_gap.execution",
                    "pretraining_gap.planning",
                    "pretraining_gap.tracking",
                )
            )
            for m in reached(graph, module)
        ), module
