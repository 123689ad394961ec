"""Dependency direction: core imports no app and no modality library; apps import no other app
(purification may import vision). Reads the imports of every source file, so it holds as apps arrive."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODALITY_LIBS = {"torchvision", "torchaudio", "rdkit", "torch_geometric", "transformers", "gluonts", "torchattacks"}
APPS = ("vision", "text", "audio", "molecules", "timeseries", "purification", "multimodal")
ALLOWED_APP_IMPORTS = {"purification": {"vision"}}


def _import_targets(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import statement of a file, at any depth (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path)
    pkg_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [alias.name for alias in node.names]))
    return out


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved against its package), with
    `module.name` for every name a `from module import name` takes."""
    names: set[str] = set()
    for mod, taken in _import_targets(path):
        names.add(mod)
        names.update(f"{mod}.{n}" for n in taken)
    return names


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    i = len(parts) - 1 - parts[::-1].index("src")
    name = ".".join(parts[i + 1 :])
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _sources(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*.py") if "src" in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def _app_of(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "omnidiffusion" and parts[1] in APPS:
        return parts[1]
    return None


CORE_FILES = _sources(ROOT / "core")
APP_FILES = [p for app in APPS for p in _sources(ROOT / "apps" / app)]


def test_sources_found():
    assert CORE_FILES, "no core sources found: the layering test would check nothing"
    assert all(_module_name(p).startswith("omnidiffusion.core") for p in CORE_FILES)


def test_no_namespace_init():
    for base in [ROOT / "core", *(ROOT / "apps" / a for a in APPS)]:
        assert not (base / "src" / "omnidiffusion" / "__init__.py").exists(), f"{base}: breaks the PEP 420 namespace"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_app_and_no_modality_library(path):
    bad = sorted(n for n in _imports(path) if _top(n) in MODALITY_LIBS or _app_of(n))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_apps_import_no_other_app(path):
    own = _app_of(_module_name(path))
    allowed = {own} | ALLOWED_APP_IMPORTS.get(own, set())
    bad = sorted(n for n in _imports(path) if _app_of(n) and _app_of(n) not in allowed)
    assert not bad, f"{path.relative_to(ROOT)} ({own}) imports {bad}"


@pytest.mark.parametrize("path", CORE_FILES + APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_diffusers_only_in_core_interop(path):
    """diffusers is an optional extra: one module reads and writes its folders, everything else calls that."""
    if _module_name(path) == "omnidiffusion.core.interop":
        return
    bad = sorted(n for n in _imports(path) if _top(n) == "diffusers")
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; use omnidiffusion.core.interop"


def test_checker_catches_a_violation(tmp_path):
    """The import reader sees plain, dotted, from- and relative imports (guards against a test that cannot fail)."""
    src = tmp_path / "src" / "omnidiffusion" / "core"
    src.mkdir(parents=True)
    f = src / "bad.py"
    f.write_text("import torchvision.transforms\nfrom rdkit import Chem\nfrom ..vision import models\n")
    names = _imports(f)
    assert "torchvision.transforms" in names and "rdkit" in names
    assert any(_app_of(n) == "vision" for n in names)


def test_importing_core_loads_no_modality_library():
    """At run time too: a fresh interpreter importing omnidiffusion.core has none of them in sys.modules."""
    import subprocess
    import sys

    code = (
        "import sys, omnidiffusion.core\n"
        f"bad = sorted(m for m in {sorted(MODALITY_LIBS | {'diffusers'})!r} if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing omnidiffusion.core loaded {out.stdout.strip()}"


# The modality libraries each app may load: its own, plus the neighbours those pull in when present
# (transformers imports tokenizers, torchvision, torchaudio; torch-geometric imports transformers).
# Purification builds on vision.
APP_LIBS = {
    "vision": {"torchvision"},
    "text": {"transformers", "tokenizers"},
    "audio": {"torchaudio"},
    "molecules": {"rdkit", "torch_geometric"},
    "timeseries": {"gluonts"},
    "purification": {"torchattacks", "torchvision"},
    "multimodal": {"transformers", "tokenizers"},
}
NEIGHBOURS = {
    "transformers": {"tokenizers", "torchvision", "torchaudio"},
    "torch_geometric": {"transformers", "tokenizers", "torchvision", "torchaudio"},
}
INSTALLED_APPS = [a for a in APPS if (ROOT / "apps" / a / "src" / "omnidiffusion" / a / "__init__.py").exists()]


def _allowed_libs(app: str) -> set[str]:
    own = set(APP_LIBS[app])
    for dep in ALLOWED_APP_IMPORTS.get(app, ()):
        own |= APP_LIBS[dep]
    for lib in list(own):
        own |= NEIGHBOURS.get(lib, set())
    return own


@pytest.mark.parametrize("app", INSTALLED_APPS)
def test_importing_an_app_loads_no_other_modality_library(app):
    """Checklist item 1: a fresh interpreter importing omnidiffusion.<app> loads only that app's libraries."""
    import subprocess
    import sys

    libs = sorted(MODALITY_LIBS | {"tokenizers"})
    code = f"import sys, omnidiffusion.{app}\nprint(','.join(m for m in {libs!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m for m in out.stdout.strip().split(",") if m}
    bad = sorted(loaded - _allowed_libs(app))
    assert not bad, f"importing omnidiffusion.{app} loaded {bad}"


# ----------------------------------------------------------------------------------------------------------------
# No import cycles between the modules of one package, function-local imports included, and no private name
# imported from another module.


def _package_of(module: str) -> str:
    """The distribution-level package a module belongs to: omnidiffusion.core or omnidiffusion.<app>."""
    return ".".join(module.split(".")[:2])


def _module_graph(files: list[Path]) -> dict[str, set[str]]:
    """Edges a -> b when module a imports module b of the same package (`from pkg import sub` names pkg.sub)."""
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for target, names in _import_targets(path):
            candidates = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            for cand in candidates:
                while cand and cand not in modules:  # `import a.b.c` of a name inside a module
                    cand = cand.rpartition(".")[0]
                if cand and cand != mod and _package_of(cand) == _package_of(mod):
                    graph[mod].add(cand)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the edges a package's __init__ has to its own submodules: re-exporting them is not a cycle, but a
    submodule importing the __init__ of its package (or of a parent) still is."""
    def is_init_of(pkg: str, mod: str) -> bool:
        return mod.startswith(pkg + ".")

    return {m: {t for t in ts if not is_init_of(m, t)} for m, ts in graph.items()}


@pytest.mark.parametrize("package", ["core", *INSTALLED_APPS])
def test_no_import_cycle(package):
    files = CORE_FILES if package == "core" else _sources(ROOT / "apps" / package)
    cycles = _cycles(_without_package_inits(_module_graph(files)))
    assert not cycles, f"import cycles in omnidiffusion.{package}: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", CORE_FILES + APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_imported_across_modules(path):
    bad = sorted(
        f"{mod}.{n}"
        for mod, names in _import_targets(path)
        if mod.startswith("omnidiffusion")
        for n in names
        if n.startswith("_") and not n.startswith("__")
    )
    assert not bad, f"{path.relative_to(ROOT)} imports private names {bad}; make them public in one module"


def test_cycle_checker_catches_a_cycle(tmp_path):
    """A function-local import closing a loop is found (guards against a check that cannot fail)."""
    pkg = tmp_path / "src" / "omnidiffusion" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from .a import f  # hidden in a function\n    return f\n")
    (pkg / "c.py").write_text("from . import a\n")
    cycles = _cycles(_without_package_inits(_module_graph(sorted(pkg.glob("*.py")))))
    assert cycles == [["omnidiffusion.demo.a", "omnidiffusion.demo.b"]]
