"""How the raw records in this folder were made: one real pytest run of
clients/cubie in a real environment, turned into a raw record the way the
matrix runner does (parse_junit, summarize, make_raw) with the suite's own
signature and evidence added. Kept so the data can be remade:

    python3 tests/data/raw-cubie/make_raw.py VENV_PYTHON "REQUIREMENTS" \
        OUT_DIR [pytest args...]
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT))

from racematrix import client_report, outcomes, results  # noqa: E402
from racematrix.envspec import EnvSpec, parse_spec  # noqa: E402
from racematrix.provenance import machine_info  # noqa: E402
from racematrix.suites import load_suites  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from nox.project import load_toml
else:
    def load_toml(path):
        return tomllib.loads(Path(path).read_text())

RECORDED = {"cubie", "cubie-numba-cuda-mlir", "numba", "numba-cuda",
            "llvmlite", "numpy", "cuda-bindings", "sympy", "pytest",
            "pytest-repeat", "pytest-timeout"}


def main(python, requirements, out_dir, *pytest_args):
    table = load_toml(PROJECT / "pyproject.toml")["tool"]["racematrix"]
    if "cubie" not in table.get("suites", {}):  # not wired in yet
        table = load_toml(PROJECT / "tests" / "data" /
                          "suites-pyproject.toml")["tool"]["racematrix"]
    suite = load_suites(table, {"MATRIX_SUITES": "cubie"}, PROJECT)["cubie"]
    timeout = suite.config(table, {}).timeout
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True).stdout.strip()
    spec = EnvSpec(".".join(version.split()[0].split(".")[:2]),
                   parse_spec(requirements), True, "cubie")
    listed = json.loads(subprocess.run(
        ["uv", "pip", "list", "--python", python, "--format", "json"],
        capture_output=True, text=True, check=True).stdout)
    packages = {p["name"]: p["version"] for p in listed
                if p["name"] in RECORDED}
    started = results.now_iso()
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        begin = time.monotonic()
        subprocess.run(
            [python, "-m", "pytest", str(suite.path), "-p",
             "no:cacheprovider", f"--timeout={timeout}",
             f"--junitxml={junit}", "-q", "-rN", "--tb=line", *pytest_args],
            env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"))
        seconds = time.monotonic() - begin
        properties, runs = outcomes.parse_junit(junit, suite.signature)
        summary = outcomes.summarize(runs, 1)
        summary.update(client_report.suite_evidence(runs, junit))
    raw = results.make_raw(
        spec, packages=packages, python=version.split()[0],
        python_build="CPython " + version, counts=summary.pop("counts"),
        summary=summary, seconds=seconds, settings=properties,
        machine=machine_info(), started=started, pytest_seconds=round(
            seconds, 2),
        command="python3 tests/data/raw-cubie/make_raw.py " + " ".join(
            [python, repr(requirements), out_dir, *pytest_args]))
    raw["suite"] = suite.name
    raw["env"] = spec.env_id
    out = Path(out_dir) / f"{raw['env']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results.write_json_atomic(out, raw)
    print(out, raw["runs"], raw["failures"], raw["hangs"], raw["skips"],
          raw["seconds"], raw["verdict"])



if __name__ == "__main__":
    main(*sys.argv[1:])
