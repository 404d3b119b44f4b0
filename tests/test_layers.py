"""The package's layers hold: import-linter's layers contract
(``[tool.importlinter]`` in pyproject.toml), function-level imports
included, checked by import-linter itself on the source, and on a copy
with an upward import planted."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

from nox.project import load_toml  # tomllib is 3.11+

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contract_modules():
    contract, = load_toml(PROJECT / "pyproject.toml")["tool"][
        "importlinter"]["contracts"]
    return {name for layer in contract["layers"]
            for name in re.split(r"\s*[|:]\s*", layer.strip("() "))}


def lint_imports(root):
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin"})


def test_the_package_keeps_its_layers():
    done = lint_imports(PROJECT)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_every_module_has_a_layer_and_every_layer_a_module():
    modules = {path.stem for path in (PROJECT / "racematrix").glob("*.py")
               if path.stem != "__init__"}
    assert contract_modules() == modules


def test_a_planted_upward_import_is_caught(tmp_path):
    shutil.copytree(PROJECT / "racematrix", tmp_path / "racematrix",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", tmp_path)
    stats = tmp_path / "racematrix" / "stats.py"
    # Inside a function, where an import-time check would never see it.
    stats.write_text(stats.read_text() + "\n\ndef planted():\n"
                     "    from .report import build_report\n"
                     "    return build_report\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "racematrix.stats -> racematrix.report" in done.stdout
