"""The built documentation: examples render as highlighted code, never as Markdown quotes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _docstrings():
    for path in sorted((ROOT / "tokenkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node, clean=True)
                if text:
                    yield f"{path.relative_to(ROOT)}:{getattr(node, 'name', '<module>')}", text


def test_docstring_examples_are_google_examples_sections():
    """``Example:`` (singular) is an admonition to mkdocstrings, and its ``>>>`` lines become nested
    Markdown quotes; ``Examples:`` renders them as highlighted code and pytest still runs them."""
    singular = [where for where, text in _docstrings() if re.search(r"^Example:\s*$", text, re.M)]
    assert singular == []


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_no_doctest_prompt_inside_a_quote_and_examples_are_highlighted(site):
    quoted, pages_with_examples = [], 0
    for page in site.rglob("*.html"):
        html = page.read_text()
        for block in re.findall(r"<blockquote>(.*?)</blockquote>", html, re.S):
            if "&gt;&gt;&gt;" in block or re.search(r"^\s*<p>\s*(import |tk\.)", block, re.M):
                quoted.append(str(page.relative_to(site)))
        pages_with_examples += '<span class="gp">&gt;&gt;&gt; </span>' in html
    assert quoted == []
    assert pages_with_examples >= 8  # the API pages show their examples as highlighted console sessions


def test_api_pages_are_split_per_family(site):
    """No API page is a wall: each family (every part kind, specs, training, losses, datasets, scores ...) has its
    own page, and the largest stays under 400 KiB of HTML (one page for all parts was 592 KiB)."""
    pages = {str(page.relative_to(site / "api").parent): page.stat().st_size for page in (site / "api").rglob("*.html")}
    for family in ("parts/quantizers", "parts/generators", "specs", "training", "losses", "datasets", "scores"):
        assert family in pages
    assert max(pages.values()) < 400 * 1024, max(pages.items(), key=lambda item: item[1])


def test_site_header_carries_the_version(site):
    import tokenkit as tk

    assert f"<title>tokenkit {tk.__version__}</title>" in (site / "index.html").read_text()


def test_every_public_name_has_an_example():
    """Every name in ``tokenkit.__all__`` (constants aside) documents itself with a doctest example."""
    import inspect

    import tokenkit as tk

    constants = {"KINDS", "__version__"}
    missing = [name for name in tk.__all__ if name not in constants
               and ">>>" not in (inspect.getdoc(getattr(tk, name)) or "")]
    assert missing == []


EXAMPLE_PACKAGES = ("tokenkit.weights", "tokenkit.train", "tokenkit.datasets", "tokenkit.data", "tokenkit.recipes")
"""Packages whose every module is walked (a new module is covered without an edit here)."""

EXAMPLE_MODULES = ("tokenkit.specs",)


def _example_modules() -> list:
    import importlib
    import pkgutil

    modules = [importlib.import_module(name) for name in EXAMPLE_MODULES]
    for package_name in EXAMPLE_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            modules.append(importlib.import_module(info.name))
    return modules


def test_every_public_function_of_weights_specs_training_and_data_has_an_example():
    """Every public function and class defined in the weights, specs, training and data modules (name
    without a leading underscore, defined there rather than imported) shows a doctest example. None is
    exempt: exceptions, named tuples and config dataclasses show theirs too."""
    import inspect

    modules = _example_modules()
    names = {module.__name__ for module in modules}
    for expected in ("tokenkit.specs", "tokenkit.weights.io", "tokenkit.train.optim", "tokenkit.train.checkpoint",
                     "tokenkit.train.trainer", "tokenkit.datasets.webdataset", "tokenkit.data", "tokenkit.recipes"):
        assert expected in names  # the walk reaches every module
    checked, missing = 0, []
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: checked in its own module
            checked += 1
            if ">>>" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{module.__name__}.{name}")
    assert checked > 80
    assert missing == [], f"public names without an example: {', '.join(missing)}"


PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_console_examples_in_pages_are_current(page):
    """Every ```pycon block of a page runs as a doctest, so a stale output shown on a page fails here."""
    import doctest

    blocks = re.findall(r"```pycon\n(.*?)```", page.read_text(), re.S)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for number, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"{page.name}[{number}]", str(page), 0)
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
