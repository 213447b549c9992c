"""The import graph: no cycles at module level, no library module reaching the CLI, a light ``hwlat --help``."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# import name -> folder (pyproject.toml's package-dir: hwlat.devices and hwlat.search live at the top level)
PACKAGE_DIRS = {"hwlat": ROOT / "hwlat", "hwlat.devices": ROOT / "devices", "hwlat.search": ROOT / "search"}


def _modules() -> dict[str, Path]:
    """Every hwlat module name and its file."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(name: str, path: Path) -> set[str]:
    """hwlat modules imported when ``name`` is imported: module-level statements only (not inside functions,
    classes or ``if TYPE_CHECKING:``), resolved to the module (``from pkg import mod``) or the package."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in MODULES else base)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)

    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_module_graph_is_found():
    graph = {name: _top_level_imports(name, path) for name, path in MODULES.items()}
    assert {"hwlat.workflows", "hwlat.compare", "hwlat.cli.main", "hwlat.devices.fake", "hwlat.search.darc"} <= set(
        graph
    )
    assert "hwlat.zoo" in graph["hwlat.workflows"]  # a module-level import
    assert "hwlat.workflows" not in graph["hwlat.cli.main"]  # a lazy one (inside a function)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_at_module_level():
    """Lazy imports (inside functions) may go against the grain; module-level ones never close a loop."""
    graph = {name: _top_level_imports(name, path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_no_library_module_imports_the_cli():
    """Looks at every import statement, lazy ones included: the CLI is a leaf that only the CLI imports."""
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("hwlat.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(m == "hwlat.cli" or m.startswith("hwlat.cli.") for m in modules):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def _loaded_after(code: str) -> set[str]:
    """Top-level names in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", ["hwlat.workflows", "hwlat.compare", "hwlat.quickstart", "hwlat.store"])
def test_library_modules_load_without_the_cli(module):
    loaded = _loaded_after(f"import {module}")
    assert module in loaded and not {m for m in loaded if m == "hwlat.cli" or m.startswith("hwlat.cli.")}


@pytest.mark.parametrize("argv", [["--help"], ["measure", "--help"], ["compare", "--help"]])
def test_help_is_light(argv):
    """Building the parser imports no deep-learning runtime: ``hwlat --help`` answers at once."""
    code = (
        "import contextlib, io, sys\n"
        f"sys.argv = ['hwlat', *{argv!r}]\n"
        "from hwlat.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main()\n"
        "assert 'usage: hwlat' in out.getvalue(), out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    heavy = {"torch", "onnxruntime", "tensorflow", "ai_edge_litert", "tensorrt", "sklearn", "pandas", "matplotlib"}
    assert heavy.isdisjoint(loaded), sorted(heavy & loaded)


def test_every_module_imports():
    """Each module imports (in one fresh interpreter, in name order)."""
    names = sorted(n for n in MODULES if n != "hwlat.cli.__main__")  # __main__ runs the CLI
    code = "import importlib\nfor name in " + repr(names) + ":\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_package_folder_is_installed():
    """A folder with an __init__.py that pyproject's explicit packages list misses would be absent from a wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join((package, *rel.parts)))
    assert found == listed
