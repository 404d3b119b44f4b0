"""``nox -s reproducers``: ``mwe/bug.py`` and ``bug_slowdown.py`` run as a
reader runs them in fresh environments of the releases around the fix (the
newest also with each patch), for the texts for upstream to paste."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic
from .interpreters import expose_interpreters, find_interpreter, install_hint
from .patching import PatchError, apply
from .provenance import machine_info, now_iso
from .report import PROJECT, declared_patches, load_json
from .venv import ProbeEnvironment, read_environment

SCRIPTS = ("bug.py", "bug_slowdown.py")
SHOWN = ("numba", "numba-cuda", "numpy")
logger = logging.getLogger(__name__)


def releases_to_show(bisect: dict) -> list[tuple[str, list[str]]]:
    """The bisect's last racy and newest release, each with its numba."""
    package = bisect["package"]
    tested = {entry["version"]: entry for entry in bisect["tested"]}
    wanted = [bisect["boundary"]["before"]["version"], bisect["releases"][-1]]
    shown = []
    for version in dict.fromkeys(wanted):
        numba = (tested.get(version) or {}).get("packages", {}).get("numba")
        shown.append((f"{package} {version}", [
            f"{package}=={version}", *([f"numba=={numba}"] if numba else [])]))
    return shown


def run_script(python: str, script: Path, timeout: float) -> dict:
    """``python SCRIPT`` in its folder, the simulator variable unset."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    load, started = os.getloadavg()[0], time.monotonic()
    code, stopped_at = None, None
    try:
        done = subprocess.run([python, script.name], cwd=script.parent,
                              env=env, capture_output=True, text=True,
                              timeout=timeout)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        stopped_at, err = timeout, f"stopped at {timeout:g} s"
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) \
            else expired.stdout or ""
    return {"command": f"python {script.name}", "exit": code,
            "stopped_at": stopped_at, "stdout": out,
            "stderr_tail": err[-2000:],
            "seconds": round(time.monotonic() - started, 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}


def build(location: Path, python: str, requirements: list[str]) -> ProbeEnvironment:
    env = ProbeEnvironment(location, python)
    env.create()
    subprocess.run(["uv", "pip", "install", "-q", "--python",
                    f"{env.bin}/python", *requirements, "numpy"], check=True)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="nox -s reproducers --", label="reproducers",
        help_hint="nox -s reproducers -- --help")
    parser.add_argument("--python", default="3.12",
                        help="the Python to run them on (default: 3.12)")
    parser.add_argument("--envdir", default=".nox/reproducers")
    parser.add_argument("--results", default=os.environ.get(
        "RACEMATRIX_RESULTS", "results"))
    parser.add_argument("--timeout", type=float, default=600)
    try:
        args = parser.parse_args(argv)
    except BadInput as error:
        parser.exit(2, f"{error}\n")
    bisect_file = Path(args.results, "bisect",
                       f"numba-cuda-py{args.python}.json")
    bisect = load_json(bisect_file) or {}
    if not bisect.get("boundary"):
        parser.exit(2, f"reproducers: {bisect_file} has no flip of the race "
                       f"(run `nox -s bisect -- --package numba-cuda --python "
                       f"{args.python}` first)\n")
    expose_interpreters()
    python = find_interpreter(args.python)
    if python is None:
        parser.exit(2, f"reproducers: no Python {args.python} here "
                       f"({install_hint(args.python)})\n")
    patches = declared_patches()
    shown = releases_to_show(bisect)
    entries = []
    for label, requirements in shown:
        version = requirements[0].split("==")[1]
        # the newest release also with each patch that applies to it
        variants = [(None, None)] + [
            (patch, diff) for patch in patches.values()
            if (label, requirements) == shown[-1]
            and (diff := patch.diff_for("numba-cuda", version))]
        for patch, diff in variants:
            name = label.replace(" ", "-") + (f"+{patch.name}" if patch else "")
            env = build(Path(args.envdir, name), python, requirements)
            if patch is not None:
                try:
                    apply(env, patch, diff, version)
                except PatchError as error:
                    logger.error("reproducers: %s", error)
                    continue
            held = read_environment(env)
            runs = [run_script(f"{env.bin}/python", PROJECT / "mwe" / script,
                               args.timeout) for script in SCRIPTS]
            logger.info("reproducers: %s: %s", name, ", ".join(
                f"{run['command']} exit {run['exit']}" if run["stopped_at"]
                is None else f"{run['command']} stopped at "
                f"{run['stopped_at']:g} s" for run in runs))
            entries.append({
                "label": label, "patch": patch.name if patch else None,
                "requirements": requirements, "python": held["python"],
                "packages": {k: held["packages"].get(k) for k in SHOWN},
                "runs": runs})
    write_json_atomic(Path(args.results, "reproducers.json"), {
        "finished": now_iso(), "machine": machine_info(),
        "command": "nox -s reproducers", "bisect": bisect_file.name,
        "entries": entries})
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main(sys.argv[1:]))
