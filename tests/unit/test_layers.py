"""Imports go down only: the tree's layers (README, "The tree") are what the code does."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each package and the packages it may import. `coex` is the roof: the command line and `coex dev`.
MAY_IMPORT: dict[str, set[str]] = {
    "runtime": set(),
    "schemas": set(),
    "topics": {"runtime", "schemas"},
    "sinks": {"runtime", "schemas"},
    "graph": {"runtime", "schemas"},
    "onboarding": {"runtime", "schemas", "topics", "sinks", "graph"},
    "ingest": {"runtime", "schemas", "topics", "sinks", "onboarding"},
    "streams": {"runtime", "schemas", "topics", "sinks", "graph", "onboarding"},
    "coex": {"runtime", "schemas", "topics", "sinks", "graph", "onboarding", "ingest", "streams"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & MAY_IMPORT.keys()


def test_every_package_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {other}"
        for package, allowed in MAY_IMPORT.items()
        for path in sorted((ROOT / package).rglob("*.py"))
        for other in sorted(imported_packages(path) - allowed - {package})
    ]
    assert wrong == []


def test_the_checker_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from coex.cli import main\n    import streams.app\n")
    assert imported_packages(module) == {"coex", "streams"}


def module_graph() -> dict[str, set[str]]:
    """Each module of the packages and the modules of the packages it imports (in functions too)."""
    paths = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in MAY_IMPORT
        for path in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from package import module` reaches the module; any other name, the package.
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in paths else node.module)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = module_graph()
    cycles = []
    for start in sorted(graph):
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            current = todo.pop()
            if current == start:
                cycles.append(start)
                break
            if current not in seen:
                seen.add(current)
                todo.extend(graph[current])
    assert cycles == []
