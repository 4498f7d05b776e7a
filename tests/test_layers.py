"""The import graph keeps the layers ARCHITECTURE.md draws: no module imports one from a layer above
its own (imports inside functions and type-checking blocks included), and there is no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "scorer"


def layers() -> dict[str, int]:
    """``module prefix -> layer`` from the ```layers block of ARCHITECTURE.md (one layer a line, lowest first)."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    out = {}
    for level, line in enumerate(ln for ln in block.group(1).splitlines() if ln.strip()):
        for name in line.split(":", 1)[1].split():
            out[name] = level
    return out


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of this package that ``name`` imports, anywhere in its file."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            # `from pkg import submodule` depends on the submodule; `from pkg import name` on pkg
            if subs:
                out |= subs
            if mod in known and len(subs) < len(node.names):
                out.add(mod)
    return out - {name}


def layer_of(name: str, table: dict[str, int]) -> int | None:
    """The layer of the longest prefix of ``name`` in the table; the package itself (``scorer``, its lazy
    exports) is a layer of its own, not a prefix of every module."""
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in table:
            return table[".".join(parts[:i])]
    return table.get(name)


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    table = layers()
    assert [m for m in modules() if layer_of(m, table) is None] == []


def test_no_module_imports_from_a_layer_above_its_own():
    table = layers()
    upward = [f"{m} (layer {layer_of(m, table)}) imports {d} (layer {layer_of(d, table)})"
              for m, deps in sorted(graph().items()) for d in sorted(deps)
              if layer_of(d, table) > layer_of(m, table)]
    assert upward == []


def test_no_import_cycle():
    g = graph()
    # a package's __init__ importing its own submodules is how packages re-export; not a cycle
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_no_module_is_over_400_lines():
    """Small modules with one job: a newcomer reads one in a sitting."""
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_the_checks_see_an_upward_import(tmp_path):
    """The graph reader itself: a stage importing a runner is caught, and a module missing from the table is
    not given the package's layer."""
    table = layers()
    assert layer_of("scorer.nowhere", table) is None and layer_of("scorer", table) is not None
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from scorer.runners import files\n", encoding="utf-8")
    deps = imports("scorer.decode", path, set(modules()))
    assert deps == {"scorer.runners.files"}
    assert layer_of("scorer.runners.files", table) > layer_of("scorer.decode", table)
