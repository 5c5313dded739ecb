"""What code computes, by content: the package modules a piece of code imports, transitively, each digested as its
syntax tree with docstrings dropped (comments never reach the tree), so that a docstring, comment or layout edit
keeps every digest and a behaviour edit changes the digests of the code that runs it.

Imports are read from the source (`ast`), not by importing: `import` and `from … import` of `pretraining_gap`
modules, relative ones resolved, those inside functions (lazy imports) included. `ast.dump` can change between
Python versions, so the minor version enters every code digest.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from functools import cache
from pathlib import Path

PACKAGE = "pretraining_gap"
ROOT = Path(__file__).resolve().parent  # the package's folder
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LIBRARIES = ("torch", "timm", "numpy", "scikit-learn")  # the ones whose kernels shape a cell's numbers


def digest(*chunks: bytes) -> str:
    """The first 16 hex digits of the SHA-256 of the chunks, in order."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:16]


def file_digest(file: Path) -> str:
    """A file's content digest (16 hex digits), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class _NoDocstrings(ast.NodeTransformer):
    """Drops every statement that is a bare string (docstrings of modules, classes, functions and attributes)."""

    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        is_text = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        return None if is_text else node


def _tree(file: Path) -> ast.Module:
    return ast.parse(file.read_text(), filename=str(file))


def source_digest(file: Path) -> str:
    """A Python file's behaviour digest: its syntax tree without docstrings (no comments, no line numbers)."""
    return digest(ast.dump(_NoDocstrings().visit(_tree(file))).encode())


def module_file(name: str) -> Path | None:
    """The source file of a `pretraining_gap` module or package, or None when the name is none of its files."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for file in (base.with_suffix(".py"), base / "__init__.py"):
        if file.is_file():
            return file
    return None


def _with_parents(name: str) -> list[str]:
    """'pretraining_gap.training.loop' -> its packages and itself, each of which Python imports."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _imported(tree: ast.Module, package: str) -> set[str]:
    """Names of the modules a tree imports anywhere (functions included); `package` resolves relative imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import loop`: a module
    return {n for name in found for n in _with_parents(name) if module_file(n)}


@cache
def imports(name: str) -> frozenset[str]:
    """Every package module that importing `name` can run: itself, its packages and what they import, transitively."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or module_file(current) is None:
            continue
        seen.add(current)
        file = module_file(current)
        package = current if file.name == "__init__.py" else current.rpartition(".")[0]
        todo += _imported(_tree(file), package) | set(_with_parents(current))
    return frozenset(seen)


def script_imports(script: Path) -> frozenset[str]:
    """The package modules a script outside the package imports, transitively."""
    found = _imported(_tree(script), PACKAGE)
    return frozenset(m for name in found for m in imports(name))


def modules_digests(names: frozenset[str]) -> dict[str, str]:
    """Module name -> its behaviour digest, sorted by name."""
    return {name: source_digest(module_file(name)) for name in sorted(names)}


@cache
def code_digest(*modules: str) -> str:
    """The digest of what the given modules compute: every package module they import, and the Python version."""
    names = frozenset().union(*(imports(m) for m in modules))
    return digest(PYTHON.encode(), json.dumps(modules_digests(names), sort_keys=True).encode())


def script_fingerprint(script: Path, named: tuple[str, ...] = ()) -> dict:
    """A stage script's code, as written for DVC: the script's own digest and each package module it imports,
    with the modules it reaches only by name (the registry's runners, `config.Regime.modules`) and theirs."""
    names = script_imports(script).union(*(imports(m) for m in named))
    here = {"script": source_digest(script), **modules_digests(names)}
    return {"python": PYTHON, "digest": digest(json.dumps(here, sort_keys=True).encode()), "modules": here}


def write(
    out: Path, scripts: list[Path], weights: dict[str, str], named: dict[str, tuple[str, ...]] | None = None
) -> list[Path]:
    """The files a pipeline's stages depend on instead of raw code and weights: `out/code/<script>.json` per stage
    script (`script_fingerprint`, with `named[stem]`: the modules that script reaches by name) and
    `out/weights/<backbone>.json` per backbone (its weights' digest). Each is rewritten byte for byte the same
    while what it digests holds. Returns the files written."""
    named = named or {}
    files = {
        out / "code" / f"{Path(s).stem}.json": script_fingerprint(Path(s), named.get(Path(s).stem, ()))
        for s in scripts
    }
    files |= {out / "weights" / f"{name}.json": {"digest": found} for name, found in weights.items()}
    for file, content in files.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    return list(files)
