"""The shape of the code base: an acyclic import graph, ``weights/`` as a leaf, imports at module
level, and a new part that is one file and nothing else."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tokenkit"

LAZY_IMPORTS_ALLOWED = {"tokenkit.cli", "tokenkit.evaluation.cli"}
"""Modules whose functions may import tokenkit modules: the console entry points, which import
only what the chosen command needs (``tokenkit --help`` must not wait for every part).

Two loaders import by name on purpose, with ``importlib``, and are not import statements: the
package's ``__getattr__`` (PEP 562: ``import tokenkit`` is light, each public name is imported on
first use) and ``registry.load_builtin`` / ``import_submodules`` (the built-in part packages and
their files, like the plug-ins of ``load_entry_points``). The graph below is the static one."""

WEIGHTS_MAY_IMPORT = {"tokenkit.errors", "tokenkit.specs", "tokenkit.sources"}
"""What ``tokenkit.weights`` reads besides itself: errors and the data types of specs and weight sources, never
models or the API."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module a dotted import name refers to (``tokenkit.api.build`` -> ``tokenkit.api``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, *, nested: bool) -> set[str]:
    """tokenkit modules that ``module`` imports: at module level, or (``nested``) inside its functions."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    found = set()
    for node in ast.walk(tree):
        if (id(node) in inner) != nested:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(o for o in map(_owner, names) if o is not None and o != module)
    return found


def _graph(*, nested: bool) -> dict[str, set[str]]:
    """Import edges; importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless the importer is inside it)."""
    graph = {}
    for module in MODULES:
        own = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
        edges = set()
        for target in _imports(module, nested=False) | (_imports(module, nested=True) if nested else set()):
            edges.add(target)
            parent = target.rpartition(".")[0]
            while parent:
                if parent not in own:
                    edges.add(parent)
                parent = parent.rpartition(".")[0]
        graph[module] = edges - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle_even_counting_imports_inside_functions():
    assert _cycles(_graph(nested=False)) == []
    assert _cycles(_graph(nested=True)) == []


def test_imports_inside_functions_only_in_the_console_entry_points():
    nested = {m: sorted(_imports(m, nested=True)) for m in MODULES if m not in LAZY_IMPORTS_ALLOWED}
    assert {m: i for m, i in nested.items() if i} == {}


def test_weights_is_a_leaf_that_builds_no_model():
    weights = [m for m in MODULES if m == "tokenkit.weights" or m.startswith("tokenkit.weights.")]
    reads = {t for m in weights for t in _imports(m, nested=False) | _imports(m, nested=True)}
    assert {t for t in reads if not t.startswith("tokenkit.weights")} <= WEIGHTS_MAY_IMPORT


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_in_a_fresh_interpreter(order):
    names = sorted(m for m in MODULES if m != "tokenkit")
    if order == "reversed":
        names.reverse()
    code = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


NEW_PART = '''
"""A test part: signs of a linear map, written as a user would, in one new file."""

import dataclasses

import torch
from torch import nn

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class SignConfig:
    in_dim: int = 8
    out_dim: int = 8


@register("quantizer", "one-file-sign")
class SignQuantizer(Quantizer):
    """Latents ``(B, N, in_dim)`` -> signs ``(B, N, out_dim)``; continuous (no ids)."""

    Config = SignConfig

    def __init__(self, config):
        super().__init__()
        self.proj = nn.Linear(config.in_dim, config.out_dim)

    def forward(self, latents):
        x = self.proj(latents)
        codes = x + (torch.sign(x) - x).detach()
        return QuantizerOutput(codes, None, x.new_zeros(()), {})
'''

BUILD_EVERYWHERE = '''
import torch
import tokenkit as tk
from tokenkit.compose import build_from_spec

assert tk.__file__.startswith(__import__("os").getcwd()), tk.__file__  # the copy, not the installed package

assert "one-file-sign" in tk.list_parts("quantizer"), tk.list_parts("quantizer")
built = []
for name in tk.list_models():
    spec = tk.spec(name)
    if not isinstance(spec, tk.TokenizerSpec):
        continue
    q = spec.resolve()["quantizer"]
    swapped = spec.replace(quantizer=tk.Part("one-file-sign", in_dim=q.in_dim, out_dim=q.out_dim))
    model = build_from_spec(swapped, device="meta")
    assert type(model.quantizer).__name__ == "SignQuantizer" and model.codebook_size is None
    built.append(name)
tok = tk.build("titok-tiny", quantizer=tk.Part("one-file-sign", in_dim=12, out_dim=12))
images = torch.rand(2, 3, tok.image_size, tok.image_size)
out = tok(images)
assert out.images.shape == images.shape and out.indices is None
print(len(built), " ".join(built))
'''


def test_a_new_part_is_one_file_and_builds_into_every_composition(tmp_path):
    """Copy the package, add one file to ``quantizers/``, touch nothing else: the part is registered
    (the family package discovers its modules) and builds into every reference tokenizer."""
    copy = tmp_path / "tokenkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "quantizers" / "one_file_sign.py").write_text(textwrap.dedent(NEW_PART))
    result = subprocess.run([sys.executable, "-c", BUILD_EVERYWHERE], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    count, names = result.stdout.split(maxsplit=1)
    assert int(count) >= 10 and "titok-l32" in names and "maskgit-vqgan" in names
