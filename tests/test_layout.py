"""The package layout: layers import one way, no cycles, no private names across modules.

Read from the source with ``ast`` (no import needed): every ``import`` / ``from ... import``
inside ``pftlite/``, lazy ones in function bodies included.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pftlite"

#: bottom -> top; a module may import only from its own layer or the layers below it
LAYERS = ("core", "structures", "datasets", "potentials", "phonons", "kappa", "training", "testing", "cli")
TOP = {"pftlite", "pftlite.__main__", "pftlite.calculator"}  # façade modules: may import anything
MAX_LINES = 800


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        name = name.removesuffix(".__init__")
        out[name] = (p, ast.parse(p.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) pairs of module ``name``."""
    path, tree = MODULES[name]
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = pkg
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            for a in node.names:
                full = f"{mod}.{a.name}"
                out.append((full, None) if full in MODULES else (mod, a.name))
        elif isinstance(node, ast.Import):
            out.extend((a.name, None) for a in node.names)
    return [(m, n) for m, n in out if m in MODULES and m != name]


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_layers_import_downwards():
    bad = []
    for name in MODULES:
        lo = _layer(name)
        if lo is None:
            continue
        for mod, _ in _imports(name):
            hi = _layer(mod)
            if hi is not None and hi > lo:
                bad.append(f"{name} ({LAYERS[lo]}) imports {mod} ({LAYERS[hi]})")
            if hi is None and mod not in ("pftlite",):
                bad.append(f"{name} imports the façade {mod}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {n: {m for m, _ in _imports(n) if not (MODULES[n][0].name == "__init__.py" and m.startswith(n + "."))}
             for n in MODULES}  # fmt: skip
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_across_modules():
    bad = [f"{name} imports {mod}.{n}" for name in MODULES for mod, n in _imports(name)
           if n is not None and n.startswith("_") and n != "__version__"]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_module_size():
    sizes = {name: MODULES[name][0].read_text(encoding="utf-8").count("\n") for name in MODULES}
    big = [f"{name}: {n} lines" for name, n in sizes.items() if n > MAX_LINES]
    assert not big, f"modules over {MAX_LINES} lines (split them by what they hold): {big}"


def test_every_layer_exists():
    for layer in LAYERS:
        assert (PKG / layer / "__init__.py").is_file(), layer
