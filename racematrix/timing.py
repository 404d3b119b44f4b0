"""``python -m racematrix.timing``: the launch-time workload timed in one
fresh environment per requirement set, outside the matrix, written to
``launch_time.json`` and ``.md`` (with the stacks of a launch past the
limit)."""
import os
import shlex
import sys
import time
from pathlib import Path

from .envspec import ConfigError, EnvSpec, parse_python, parse_spec
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .install import install
from .interpreters import expose_interpreters, missing_interpreters
from .bisect_files import number_cell, provenance_line
from .markdown import table
from .measure_launch import LIMIT, empty_record, run_launch_time
from .provenance import stamp
from .tables import format_launch
from .venv import ProbeEnvironment, read_environment


def measure_specs(python, specs, envdir, log, *, sim=True, launches=20,
                  limit=LIMIT, budget=90.0, stack_dir=None):
    """Time the workload in one environment per requirement set; returns
    one entry per spec with its versions and ``launch_seconds``."""
    entries = []
    for requirements in specs:
        spec = EnvSpec(python, tuple(requirements), sim)
        env = ProbeEnvironment(Path(envdir) / f"timing-{spec.env_id}", python,
                               log)
        env.create()
        problem = install(env, spec)
        entry = {"env": spec.env_id, "requirements": list(requirements)}
        if problem:
            entry["launch_seconds"] = empty_record(limit, budget, problem[1])
            entries.append(entry)
            continue
        info = read_environment(env)
        stack_file = None
        if stack_dir:
            Path(stack_dir).mkdir(parents=True, exist_ok=True)
            stack_file = Path(stack_dir) / f"{spec.env_id}.stack.txt"
        started, load_before = time.monotonic(), os.getloadavg()[0]
        record = run_launch_time(env, sim, launches=launches, limit=limit,
                                 budget=budget, stack_file=stack_file)
        # Free cores change how often the lock stalls: record the load.
        entry.update(python=info["python"], packages=info["packages"],
                     wall_seconds=round(time.monotonic() - started, 1),
                     load_average=[load_before, os.getloadavg()[0]],
                     launch_seconds=record)
        if stack_file and stack_file.exists() and stack_file.stat().st_size:
            entry["stack_file"] = str(stack_file)
        # The tables' cell, which names an error itself.
        log(f"{spec.env_id}: launch s {format_launch(record)}")
        entries.append(entry)
    return entries


def render_launch_times(data):
    lines = [f"# Launch time of the MWE's timing workload (Python "
             f"{data['python']}, simulator {'on' if data['sim'] else 'off'})",
             "",
             "Each launch: 1 block of 32 threads, each calling a device "
             "function of another module 1,000 times, at Python's default "
             "switch interval (`mwe/launch_time.py`). A launch past the limit "
             "counts at the limit.", "",
             ]
    body = []
    for entry in data["entries"]:
        record = entry["launch_seconds"]
        packages = entry.get("packages", {})
        body.append((" ".join(entry["requirements"]),
                     packages.get("numba", "–"),
                     packages.get("numba-cuda", "–"), record["n"],
                     number_cell(record["median"]), number_cell(record["p95"]),
                     number_cell(record["max"]),
                     f"{record['past_limit']} (limit {record['limit']:g} s)",
                     record.get("race_errors", "–"),
                     entry.get("wall_seconds", "–")))
        if record.get("error"):
            body.append((f"↳ error: {record['error']}", *[""] * 9))
    lines += table(("requirements", "numba", "numba-cuda", "launches",
                    "median s", "p95 s", "max s", "past limit",
                    "race errors", "wall s"), body)
    return "\n".join(lines + ["", provenance_line(data)]) + "\n"


def main(argv=None):
    parser = OneLineArgumentParser(
        prog="python -m racematrix.timing", label="timing",
        help_hint="python -m racematrix.timing --help",
        description="Time mwe/launch_time.py in one fresh environment per "
                    "requirement set; writes launch_time.json and .md.")
    parser.add_argument("--python", required=True)
    parser.add_argument("--spec", action="append", required=True,
                        help="a requirement set, e.g. 'numba-cuda==0.30.4'; "
                             "repeat for more")
    parser.add_argument("--envdir", required=True,
                        help="folder for the environments")
    parser.add_argument("--out", required=True,
                        help="folder for launch_time.json and .md")
    parser.add_argument("--launches", type=int, default=20)
    parser.add_argument("--limit", type=float, default=LIMIT)
    parser.add_argument("--budget", type=float, default=90.0)
    parser.add_argument("--sim", type=int, choices=(0, 1), default=1)
    try:
        args = parser.parse_args(argv)
        python = parse_python(args.python)
        specs = [parse_spec(text) for text in args.spec]
    except (BadInput, ConfigError) as error:
        sys.exit(f"timing: {error}" if isinstance(error, ConfigError)
                 else str(error))
    expose_interpreters()
    missing = missing_interpreters([python])
    if missing:
        sys.exit(f"timing: {missing}")
    out = Path(args.out)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    try:
        entries = measure_specs(python, specs, args.envdir, log,
                                sim=bool(args.sim), launches=args.launches,
                                limit=args.limit, budget=args.budget,
                                stack_dir=out / "stacks")
    except BadInput as error:
        sys.exit(f"timing: {error}")
    data = {"python": python, "sim": bool(args.sim), "entries": entries,
            "provenance": stamp("python -m racematrix.timing " + shlex.join(
                sys.argv[1:] if argv is None else argv))}
    write_json_atomic(out / "launch_time.json", data)
    write_text_atomic(out / "launch_time.md", render_launch_times(data))
    print(render_launch_times(data))


if __name__ == "__main__":
    main()
