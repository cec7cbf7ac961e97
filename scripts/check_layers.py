"""Check the add-on's two layers, its rooms and its import graph; exit 1 on any violation.

    python3 scripts/check_layers.py                       # the repository's triverse_addon/
    python3 scripts/check_layers.py --package PATH        # another copy of the package (its folder name is its name)

Every `.py` under the package is parsed (standard library only: `ast`, `pathlib`) and every import statement
is read wherever it stands: at module level, inside a function, under `if TYPE_CHECKING:`. Imports built
at run time (`importlib.import_module(f"...")`) are not seen. Absolute (`triverse_addon.x.y`) and relative
(`from . import a`, `from ..service.errors import X`, `from .. import service`) imports are resolved to
modules of the package; `from pkg import name` imports `pkg.name` when `pkg/name.py` or
`pkg/name/__init__.py` exists, else `pkg` itself (the name is defined in its `__init__`).

Rules:
- service/ (the pure layer) imports neither Blender (`bpy`, `mathutils`, `gpu`, ...) nor anything of the
  add-on outside service/ (not `blender`, not the package's own `__init__`).
- blender/common/ imports only service/ and common/ of the add-on: never a feature.
- A feature (every other direct child of blender/: a module such as `library.py` or a package such as
  `generate/`) imports only service/, common/ and itself: never another feature. Nor may common or a
  feature import `blender/__init__.py` or the package's `__init__.py`: those import every feature.
- Every module lives in service/ or blender/; only the package's `__init__.py` sits beside them.
- No import circle anywhere in the package: every import counts as an edge, whatever its purpose.
- No module over 450 lines.

How the graph models packages: importing `a.b.c` also runs `a/__init__.py` and `a/b/__init__.py` first, so
the importing module gets an edge to each of those ancestor packages as well, which can close a circle
(`x` imports `p.q`, whose `p/__init__.py` imports `x`). The exception is the importing module's OWN
ancestors: `a.b.m` can only run once `a` and `a.b` are being imported, and Python does not run a package's
`__init__` a second time, so `a/b/__init__.py` importing its child `m` while `m` does `from . import n`
(implicitly `a.b`) is no circle and gets no edge to `a.b`. An EXPLICIT import of an own ancestor (`from .
import NAME` where NAME is defined in `a/b/__init__.py`) does count: it needs that `__init__` to have run
far enough, which is exactly what a circle breaks. Layer rules are judged on explicit targets only; the
implicit ancestors of an allowed target (`service/__init__.py`, `blender/common/__init__.py`) are allowed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "triverse_addon"
MAX_LINES = 450
PURE, SIDE, COMMON = "service", "blender", "common"
# Blender's own modules (what `import` finds inside Blender and nowhere else), and their name families.
BLENDER_MODULES = frozenset(
    {
        "_bpy",
        "addon_utils",
        "animsys_refactor",
        "aud",
        "bgl",
        "bl_math",
        "blf",
        "bmesh",
        "bpy",
        "bpy_extras",
        "bpy_types",
        "console_python",
        "console_shell",
        "freestyle",
        "gpu",
        "gpu_extras",
        "graphviz_export",
        "idprop",
        "imbuf",
        "keyingsets_utils",
        "mathutils",
        "nodeitems_utils",
        "rna_info",
        "rna_keymap_ui",
        "rna_prop_ui",
        "rna_xml",
    }
)
BLENDER_PREFIXES = ("bl_", "bpy_", "_bpy")


@dataclass(frozen=True)
class Module:
    """One module of the package: its dotted name, its file, whether it is a package's `__init__`."""

    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    """One import statement in one module, and the module of the package (or outside name) it reaches."""

    source: str
    target: str
    line: int
    statement: str
    internal: bool  # target is a module of the package (else the top-level name of an outside module)


@dataclass(frozen=True)
class Problem:
    """A violation, printed as `file:line: what: rule`."""

    path: Path
    line: int
    text: str

    def render(self) -> str:
        """The line a developer reads."""
        return f"{shown(self.path)}:{self.line}: {self.text}"


def shown(path: Path) -> str:
    """`path` relative to the working directory when under it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def discover(package: Path) -> dict[str, Module]:
    """Every module of the package by dotted name (the package's folder name first)."""
    modules: dict[str, Module] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    return modules


def ancestors(name: str) -> list[str]:
    """The packages above a dotted name, outermost first: `a.b.c` -> [`a`, `a.b`]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def read_imports(module: Module, tree: ast.Module, modules: dict[str, Module]) -> tuple[list[Import], list[Problem]]:
    """Every import of one module, resolved; problems for those that reach no module of the package."""
    root = module.name.split(".")[0]
    home = module.name if module.is_package else module.name.rpartition(".")[0]
    found: list[Import] = []
    problems: list[Problem] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            statement = ast.unparse(node)
            for alias in node.names:
                inside = alias.name.split(".")[0] == root
                target = alias.name if inside else alias.name.split(".")[0]
                found.append(Import(module.name, target, node.lineno, statement, inside))
        elif isinstance(node, ast.ImportFrom):
            statement = ast.unparse(node)
            if node.level:
                base = home.split(".")
                if node.level - 1 >= len(base):
                    beyond = f"{statement}: relative import beyond the package"
                    problems.append(Problem(module.path, node.lineno, beyond))
                    continue
                where = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == root:
                where = node.module
            else:
                found.append(Import(module.name, (node.module or "").split(".")[0], node.lineno, statement, False))
                continue
            for alias in node.names:
                child = f"{where}.{alias.name}"
                found.append(Import(module.name, child if child in modules else where, node.lineno, statement, True))
    resolved = []
    for imp in found:
        if imp.internal and imp.target not in modules:
            problems.append(Problem(module.path, imp.line, f"{imp.statement}: no module {imp.target} in the package"))
        else:
            resolved.append(imp)
    return resolved, problems


def room(name: str, root: str) -> str:
    """Where a module lives: `top`, `service`, `hub` (blender/__init__), `common`, `feature:<name>` or `stray`."""
    parts = name.split(".")
    if parts == [root]:
        return "top"
    if parts[1] == PURE:
        return PURE
    if parts[1] == SIDE:
        if len(parts) == 2:
            return "hub"
        return COMMON if parts[2] == COMMON else f"feature:{parts[2]}"
    return "stray"


def is_blender(top: str) -> bool:
    """Whether a top-level module name is one of Blender's own."""
    return top in BLENDER_MODULES or top.startswith(BLENDER_PREFIXES)


def layer_rule(imp: Import, root: str) -> str | None:
    """The rule `imp` breaks, if any (explicit targets only)."""
    where = room(imp.source, root)
    if not imp.internal:
        if where == PURE and is_blender(imp.target):
            return f"the pure layer (service/) never imports Blender ({imp.target})"
        return None
    target = room(imp.target, root)
    if where == PURE and target != PURE:
        return f"the pure layer (service/) never imports the add-on outside service/ (this reaches {imp.target})"
    if where == COMMON and target.startswith("feature:"):
        return f"common never imports a feature (this reaches feature {target.partition(':')[2]}: {imp.target})"
    if where.startswith("feature:") and target.startswith("feature:") and target != where:
        mine, theirs = where.partition(":")[2], target.partition(":")[2]
        return f"a feature never imports another feature ({mine} imports {theirs}): share it through blender/common"
    if (where == COMMON or where.startswith("feature:")) and target in ("hub", "top"):
        return f"common and the features never import {imp.target} (its __init__ imports every feature)"
    return None


def edges_of(imports: list[Import]) -> Iterator[tuple[str, str, Import]]:
    """The graph's edges: each internal target, and its ancestor packages that are not the importer's own."""
    for imp in imports:
        if not imp.internal:
            continue
        yield imp.source, imp.target, imp
        own = set(ancestors(imp.source))
        for parent in ancestors(imp.target):
            if parent not in own and parent != imp.source:
                yield imp.source, parent, imp


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return [start, start]


def circles(modules: dict[str, Module], imports: list[Import]) -> list[list[str]]:
    """Each import circle: one shortest cycle per strongly connected component, with the imports that make it."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    why: dict[tuple[str, str], Import] = {}
    for source, target, imp in edges_of(imports):
        graph[source].add(target)
        why.setdefault((source, target), imp)
    reports = []
    for component in strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        cycle = shortest_cycle(component[0], set(component), graph)
        lines = [f"import circle: {' -> '.join(cycle)}"]
        for source, target in pairwise(cycle):
            imp = why[(source, target)]
            how = "" if imp.target == target else f" (importing it runs package {target} first)"
            lines.append(f"  {shown(modules[source].path)}:{imp.line}: {imp.statement}{how}")
        if len(component) > len(cycle) - 1:  # one tangle of several circles: break this one, run again
            names = ", ".join(component[:12]) + (f" and {len(component) - 12} more" if len(component) > 12 else "")
            lines.append(f"  the same tangle holds {len(component)} modules: {names}")
        reports.append(lines)
    return reports


def check(package: Path) -> tuple[list[str], str]:
    """Every violation as printable lines, and the closing summary line."""
    modules = discover(package)
    root = package.name
    problems: list[Problem] = []
    imports: list[Import] = []
    for module in modules.values():
        text = module.path.read_text(encoding="utf-8")
        count = len(text.splitlines())
        if count > MAX_LINES:
            problems.append(Problem(module.path, count, f"{count} lines, over the {MAX_LINES}-line limit: split it"))
        if room(module.name, root) == "stray":
            problems.append(Problem(module.path, 1, "outside the two layers: move it into service/ or blender/"))
        try:
            tree = ast.parse(text, filename=str(module.path))
        except SyntaxError as exc:
            problems.append(Problem(module.path, exc.lineno or 1, f"cannot be parsed: {exc.msg}"))
            continue
        found, unresolved = read_imports(module, tree, modules)
        problems.extend(unresolved)
        imports.extend(found)
        for imp in found:
            rule = layer_rule(imp, root)
            if rule:
                problems.append(Problem(module.path, imp.line, f"{imp.statement}: {rule}"))
    problems.sort(key=lambda p: (str(p.path), p.line, p.text))
    loops = circles(modules, imports)
    lines = [p.render() for p in problems] + [line for loop in loops for line in loop]
    counts = f"{len(modules)} modules, {len(loops)} circle{'' if len(loops) == 1 else 's'}"
    if problems or loops:
        return lines, f"layers FAILED: {len(problems)} problem{'' if len(problems) == 1 else 's'}, {counts}"
    return lines, f"layers ok: {counts}"


def main(argv: list[str] | None = None) -> int:
    """Check the package; print each violation and a summary; 1 when anything is wrong."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path, default=PACKAGE, help="the package folder (default: %(default)s)")
    args = parser.parse_args(argv)
    package: Path = args.package.resolve()
    if not (package / "__init__.py").is_file():
        print(f"layers FAILED: {package} is not a package (no __init__.py)")
        return 1
    lines, summary = check(package)
    for line in lines:
        print(line)
    print(summary)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
