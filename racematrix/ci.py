"""The CI job matrix: ``nox --list --json`` filtered to the matrix sessions,
in the shape GitHub Actions' ``strategy.matrix.include`` takes.

    nox --list --json | python -m racematrix.ci [--gpu-runner LABEL]

prints ``{"include": [...], "skipped": [...]}`` as one line of JSON.
"""
import json
import sys

import os
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: nox brings tomli
    import tomli as tomllib

from .envspec import DEFAULT_SUITE, ConfigError, EnvSpec
from .errors import BadInput, OneLineArgumentParser
from .matrix import load_matrix

PROJECT = Path(__file__).resolve().parent.parent

DEFAULT_RUNNER = "ubuntu-latest"


def job_matrix(sessions, gpu_runner="", matrix=None):
    """One job per matrix session. Simulator-off sessions need a GPU: they
    run on ``gpu_runner`` when one is given, and are listed as skipped
    otherwise. Sessions outside their suite's own lists (nox builds the
    cross product of all suites' lists) get no job."""
    include, skipped = [], []
    for entry in sessions:
        if entry.get("name") != "matrix":
            continue
        call = entry["call_spec"]
        suite = call.get("suite", DEFAULT_SUITE)
        if matrix is not None and not matrix.runs(suite, entry["python"],
                                                  call["sim"]):
            continue
        spec = EnvSpec(entry["python"], tuple(call["spec"]), call["sim"],
                       suite, call.get("patch"))
        job = {"session": entry["session"], "python": entry["python"],
               "sim": int(spec.sim), "env": spec.env_id,
               "artifact": f"raw-{spec.env_id}",
               "runs_on": DEFAULT_RUNNER if spec.sim else gpu_runner}
        (include if job["runs_on"] else skipped).append(job)
    return {"include": include, "skipped": [job["session"] for job in skipped]}


def main(argv=None):
    parser = OneLineArgumentParser(prog="python -m racematrix.ci",
                                   label="racematrix.ci",
                                   help_hint="python -m racematrix.ci --help")
    parser.add_argument("--gpu-runner", default="",
                        help="runner label for simulator-off sessions; "
                             "without one they are skipped")
    try:
        args = parser.parse_args(argv)
    except BadInput as error:
        sys.exit(str(error))
    try:
        sessions = json.load(sys.stdin)
    except ValueError as error:
        sys.exit(f"racematrix.ci: stdin is not `nox --list --json` output "
                 f"({error})")
    try:
        table = tomllib.loads((PROJECT / "pyproject.toml").read_text())
        matrix = load_matrix(table["tool"]["racematrix"], os.environ, PROJECT)
    except ConfigError as error:
        sys.exit(f"racematrix.ci: {error}")
    print(json.dumps(job_matrix(sessions, args.gpu_runner, matrix)))


if __name__ == "__main__":
    main()
