"""The CI job matrix from the config, one job per environment, as GitHub
Actions' ``strategy.matrix.include``: ``python -m racematrix.ci
[--gpu-runner LABEL]`` prints ``{"include": [...], "skipped": [...]}``."""
from __future__ import annotations

import json
import os
import sys

from .envspec import ConfigError, project_config
from .errors import BadInput, OneLineArgumentParser
from .suites import PROJECT, Matrix, env_of, load_matrix, session_id


def job_matrix(matrix: Matrix, gpu_runner: str = "") -> dict:
    """A job per ``env(...)`` session; simulator off only on ``gpu_runner``."""
    include, skipped = [], []
    for row in matrix.combinations():
        spec = env_of(row)
        job = {"session": f"env({session_id(*row)})", "python": spec.python,
               "sim": int(spec.sim), "env": spec.env_id,
               "artifact": f"raw-{spec.env_id}",
               "runs_on": "ubuntu-latest" if spec.sim else gpu_runner}
        if job["runs_on"]:
            include.append(job)
        else:
            skipped.append(job["session"])
    return {"include": include, "skipped": skipped}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m racematrix.ci",
                                   label="racematrix.ci",
                                   help_hint="python -m racematrix.ci --help")
    parser.add_argument("--gpu-runner", default="",
                        help="runner label for simulator-off sessions; "
                             "without one they are skipped")
    try:
        args = parser.parse_args(argv)
        matrix = load_matrix(project_config(PROJECT), os.environ, PROJECT)
    except ConfigError as error:
        sys.exit(f"racematrix.ci: {error}")
    except BadInput as error:  # it names the command
        sys.exit(str(error))
    print(json.dumps(job_matrix(matrix, args.gpu_runner)))


if __name__ == "__main__":
    main()
