"""The research notebooks: stripped, python3 kernel on this interpreter, public API only, sources credited.

Executing them is nbmake's job (``python -m pytest --nbmake notebooks/``); these checks are static
and fast, except one that starts the ``python3`` kernel once to see which interpreter it runs.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook checks need nbformat (pip install nbmake)")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_shanghai_step_by_step", "03_sensitivity", "04_gaps_and_new_sites",
            "05_your_own_city", "06_equity_and_supply_demand"]
STRIP_HINT = "strip it before committing: nbstripout notebooks/*.ipynb (or jupyter nbconvert --clear-output --inplace)"


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_the_notebooks_are_there():
    stems = [p.stem for p in NOTEBOOKS]
    assert set(EXPECTED) <= set(stems), f"missing notebooks: {sorted(set(EXPECTED) - set(stems))}"
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in NOTEBOOKS if p.name not in readme]
    assert not unlisted, f"notebooks/README.md does not describe {unlisted}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_and_stripped(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3", f"{path.name}: kernelspec must be python3"
    assert nb.metadata.kernelspec.language == "python"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}, cell {i}: has outputs; {STRIP_HINT}"
        assert cell.execution_count is None, f"{path.name}, cell {i}: has an execution count; {STRIP_HINT}"
        assert not set(cell.metadata) & {"execution", "scrolled", "collapsed"}, (
            f"{path.name}, cell {i}: run-time metadata {sorted(cell.metadata)}; {STRIP_HINT}")
    assert not set(nb.metadata) - {"kernelspec", "language_info"}, (
        f"{path.name}: notebook metadata {sorted(nb.metadata)}; {STRIP_HINT}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_states_question_data_and_licence(path):
    text = _markdown(_read(path))
    assert "**Question.**" in text, f"{path.name}: say what question the notebook answers"
    assert "**Data" in text, f"{path.name}: say which data it uses"
    assert "OpenStreetMap contributors" in text and "ODbL" in text, f"{path.name}: credit OSM (ODbL 1.0)"
    if "shared_data_dir" in _code(_read(path)):
        assert "DataV" in text and "not open-licensed" in text, (
            f"{path.name}: the DataV boundaries are not open-licensed; say so")


def _lifecircle_uses(source: str):
    """(module, name) for every ``from lifecircle... import name`` and ``lc.name`` in ``source``."""
    tree = ast.parse(source)
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "lifecircle"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lifecircle":
            for a in node.names:
                yield node.module, a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lifecircle.") and a.asname:
                    yield a.name, None
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield "lifecircle", node.attr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(path):
    private = []
    for module, name in _lifecircle_uses(_code(_read(path))):
        mod = importlib.import_module(module)
        public = set(getattr(mod, "__all__", ())) | ({"__version__"} if module == "lifecircle" else set())
        if name is not None and name not in public:
            private.append(f"{module}.{name}")
        if any(part.startswith("_") for part in module.split(".")):
            private.append(module)
    assert not private, f"{path.name} uses names outside the modules' __all__: {sorted(set(private))}"


def test_public_api_check_catches_private_names():
    uses = list(_lifecircle_uses("import lifecircle as lc\nfrom lifecircle.read.network import _EXCLUDED_HIGHWAY\n"
                                 "lc._x\nlc.analyze\n"))
    assert ("lifecircle.read.network", "_EXCLUDED_HIGHWAY") in uses
    assert ("lifecircle", "_x") in uses and ("lifecircle", "analyze") in uses


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_writes_only_to_temporary_folders(path):
    code = _code(_read(path))
    for call in re.findall(r"\.(?:write|savefig|to_file|to_csv|write_text|write_bytes|mkdir)\(([^)\n]*)", code):
        target = call.split(",")[0].strip()
        assert target.startswith(("out", "OUT")) or target == "", (
            f"{path.name}: writes to {target!r}; write into the tempfile.mkdtemp() folder (out / OUT)")
    for call in re.findall(r"save_map\(\w+,\s*([^)\n]*)", code):
        assert call.startswith(("out", "OUT")), f"{path.name}: save_map to {call!r}; use the temporary folder"
    assert re.search(r"(?m)^(out|OUT) = Path\(tempfile\.mkdtemp\(", code) or not re.search(
        r"\.(write|savefig)\(", code), f"{path.name}: make out = Path(tempfile.mkdtemp(...)) before writing"


def test_python3_kernel_runs_this_interpreter():
    """nbmake starts the notebooks' ``python3`` kernel: it must be the Python that runs pytest."""
    manager = pytest.importorskip("jupyter_client.manager")
    pytest.importorskip("ipykernel")
    km, kc = manager.start_new_kernel(kernel_name="python3")
    try:
        reply = []
        kc.execute_interactive("import sys; print(sys.executable)", timeout=60,
                               output_hook=lambda msg: reply.append(msg["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    kernel_python = "".join(reply).strip()
    assert kernel_python and os.path.samefile(kernel_python, sys.executable), (
        f"the python3 kernel runs {kernel_python or '(nothing)'}, pytest runs {sys.executable}; "
        f"install this interpreter's kernel: {sys.executable} -m ipykernel install --user --name python3")
