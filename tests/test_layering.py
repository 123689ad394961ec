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


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg_parts = _module_name(path).split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{alias.name}" for alias in node.names)
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
