"""growkit's import graph, read from the source with ast (nothing is imported).

Every import statement counts, also one inside a function; only those under ``if TYPE_CHECKING:`` do not
(they never run). ``from P import name`` is an edge to the module ``P.name`` when that is a module, else
to ``P``. The graph holds the package's own modules only.

    python tests/import_graph.py [PACKAGE_DIR]     prints modules, edges, levels, upward edges and circles
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

# Layers, lowest first: a module may import its own layer (without circles) and the layers below it.
# (A study module of a method may use papers/'s report and run helpers; papers/ never imports a method.)
LAYERS = (
    ("errors", "version"),
    ("models", "data"),
    ("dist",),
    ("engine", "growers"),
    ("runs",),
    ("viz",),
    ("papers",),
    ("methods",),
    ("", "cli", "__main__"),  # "": the package's __init__
)


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) body."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    skip.update(id(n) for n in ast.walk(stmt))
    return skip


def _resolve(current: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    parts = current.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def graph(root: str | Path) -> dict[str, set[str]]:
    """module -> the package modules it imports (``root``: the package folder, e.g. growkit/)."""
    root = Path(root).resolve()
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    pkg = root.name
    out: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path.name == "__init__.py", node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # `import growkit.x.y` of a name inside a module: the module
                    t = t.rpartition(".")[0]
                if t and (t == pkg or t.startswith(pkg + ".")) and t != mod:
                    deps.add(t)
        out[mod] = deps
    return out


def components(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each sorted): the import circles."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]

    def strong(v):  # Tarjan, iterative (deep graphs must not hit the recursion limit)
        work = [(v, iter(sorted(g.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return sorted(c for c in comps if len(c) > 1)


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """One closed path (first module repeated at the end) through each import circle."""
    return [_closed_path(g, c) for c in components(g)]


def _closed_path(g: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A cycle through the component's first module (breadth-first, so a short one)."""
    start, members = comp[0], set(comp)
    prev = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


def levels(g: dict[str, set[str]]) -> int:
    """Modules on the longest import chain (a module importing nothing of the package is level 1);
    a circle counts as one node (its strongly connected component)."""
    comp_of = {}
    for comp in components(g):
        for m in comp:
            comp_of[m] = comp[0]
    node = lambda m: comp_of.get(m, m)  # noqa: E731
    dag: dict[str, set[str]] = {}
    for m, deps in g.items():
        dag.setdefault(node(m), set()).update(node(d) for d in deps if node(d) != node(m))
    depth: dict[str, int] = {}

    def level(v):
        todo = [v]
        while todo:
            x = todo[-1]
            missing = [d for d in dag.get(x, ()) if d not in depth]
            if missing:
                todo.extend(missing)
                continue
            todo.pop()
            depth[x] = 1 + max((depth[d] for d in dag.get(x, ())), default=0)
        return depth[v]

    return max((level(v) for v in dag), default=0)


def layer(module: str, rename: dict[str, str] | None = None) -> int:
    """The rank of a module's layer in :data:`LAYERS` (``rename``: an old module name -> its new one)."""
    if rename:
        module = rename.get(module, module)
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise KeyError(f"{module} is in no layer of LAYERS")


def upward(g: dict[str, set[str]], rename: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Edges from a module to a higher layer than its own."""
    return sorted((m, d) for m, deps in g.items() for d in deps if layer(d, rename) > layer(m, rename))


def crossings(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges from one method's package (``<pkg>.methods.<name>``) into another's."""
    def method(m):
        parts = m.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "methods" else None
    return sorted((m, d) for m, deps in g.items() for d in deps if method(m) and method(d) and method(m) != method(d))


def reach(g: dict[str, set[str]], starts) -> set[str]:
    """Every module that importing ``starts`` may import (its closure, the starts included)."""
    seen, todo = set(), list(starts)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(g.get(m, ()))
    return seen


def summary(root: str | Path, rename: dict[str, str] | None = None) -> dict:
    g = graph(root)
    return {"modules": len(g), "edges": sum(map(len, g.values())), "levels": levels(g),
            "upward": [f"{a} -> {b}" for a, b in upward(g, rename)],
            "circles": [len(c) for c in components(g)], "a path through each": circles(g)}


# The old flat layout (before growkit.engine, runs, dist, methods, papers) mapped to the packages its modules
# went to, to measure the old code against the same layers.
OLD = {
    "growkit.config": "growkit.engine.config", "growkit.flags": "growkit.engine.flags",
    "growkit.schedule": "growkit.engine.schedule", "growkit.optim": "growkit.engine.optim",
    "growkit.surgery": "growkit.engine.surgery", "growkit.passes": "growkit.engine.passes",
    "growkit.train": "growkit.engine.trainer", "growkit.callbacks": "growkit.engine.callbacks",
    "growkit.checkpoint": "growkit.engine.checkpoint", "growkit.records": "growkit.runs.records",
    "growkit.methods": "growkit.runs.registry", "growkit.runs": "growkit.runs.lifecycle",
    "growkit.rundir": "growkit.runs.rundir", "growkit.recover": "growkit.runs.recover",
    "growkit.distributed": "growkit.dist.group", "growkit.ddp": "growkit.dist.data_parallel",
    "growkit.dist_runs": "growkit.dist.leader", "growkit.experiments": "growkit.methods.autogrow.study",
    "growkit.adenel_method": "growkit.methods.adenel.method", "growkit.adenel_study": "growkit.methods.adenel.study",
    "growkit.lbi": "growkit.methods.adenel.lbi", "growkit.prune": "growkit.methods.adenel.prune",
    "growkit.gn_estimate": "growkit.methods.gauss_newton.estimate",
    "growkit.gn_method": "growkit.methods.gauss_newton.method",
    "growkit.gn_experiments": "growkit.methods.gauss_newton.study",
    "growkit.continual": "growkit.methods.learn_to_grow.continual",
    "growkit.l2g_runs": "growkit.methods.learn_to_grow.own_loop",
    "growkit.growers.autogrow": "growkit.methods.autogrow.grower",
    "growkit.growers.network_morphism": "growkit.methods.autogrow.morphism",
    "growkit.growers.morph": "growkit.methods.autogrow.morphism",
    "growkit.growers.adenel": "growkit.methods.adenel.grower",
    "growkit.growers.adenel_policy": "growkit.methods.adenel.policy",
    "growkit.growers.gauss_newton": "growkit.methods.gauss_newton.grower",
    "growkit.growers.learn_to_grow": "growkit.methods.learn_to_grow.loop",
    "growkit.growers.l2g_supernet": "growkit.methods.learn_to_grow.supernet",
    "growkit.growers.l2g_search": "growkit.methods.learn_to_grow.search",
    "growkit.growers.l2g_ddp": "growkit.methods.learn_to_grow.ddp",
    "growkit.growers": "growkit.growers",  # its __init__ imported the growers of three methods
    "growkit.viz.adenel_plots": "growkit.methods.adenel.plots",
    "growkit.viz.continual_plots": "growkit.methods.learn_to_grow.plots",
    "growkit.figures": "growkit.papers.figures", "growkit.profiles": "growkit.papers.profiles",
    "growkit.report": "growkit.papers.report",
}

if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "growkit")
    old = (root / "train.py").exists()
    print(json.dumps(summary(root, OLD if old else None), indent=1))
