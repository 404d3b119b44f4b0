"""``nox -s reproducers``: ``mwe/bug.py`` and ``bug_slowdown.py`` run as a
reader runs them, in fresh environments of the race bisect's last racy and
newest release (the newest also with each patch), for the upstream texts."""
from __future__ import annotations

import logging
import os
import subprocess
import time
from argparse import ArgumentDefaultsHelpFormatter
from pathlib import Path

from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic
from .interpreters import missing_interpreters
from .patching import PatchError, apply
from .provenance import stamp
from .report import PROJECT, declared_patches, load_json
from .install import ProbeEnvironment, read_environment

SCRIPTS = ("bug.py", "bug_slowdown.py")
logger = logging.getLogger(__name__)


def releases_to_show(bisect: dict) -> list[tuple[str, list[str]]]:
    """The bisect's last racy and newest release, each with its numba."""
    package = bisect["package"]
    tested = {entry["version"]: entry for entry in bisect["tested"]}
    shown = []
    for version in dict.fromkeys([bisect["boundary"]["before"]["version"],
                                  bisect["releases"][-1]]):
        numba = tested.get(version, {}).get("packages", {}).get("numba")
        shown.append((f"{package} {version}", [
            f"{package}=={version}", *([f"numba=={numba}"] if numba else [])]))
    return shown


def run_script(python: str, script: Path, timeout: float) -> dict:
    """``python SCRIPT`` in its folder, the simulator variable unset."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    load, started = os.getloadavg()[0], time.monotonic()
    try:
        done = subprocess.run([python, script.name], cwd=script.parent,
                              env=env, capture_output=True, text=True,
                              timeout=timeout)
        code, stopped_at, out, err = (done.returncode, None, done.stdout,
                                      done.stderr)
    except subprocess.TimeoutExpired as expired:  # its output is bytes
        code, stopped_at, err = None, timeout, f"stopped at {timeout:g} s"
        out = (expired.stdout or b"").decode()
    return {"command": f"python {script.name}", "exit": code,
            "stopped_at": stopped_at, "stdout": out,
            "stderr_tail": err[-2000:],
            "seconds": round(time.monotonic() - started, 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}


def run(argv: list[str], envdir: str, results_dir: str, command: str) -> dict:
    """Each script in each environment, recorded in reproducers.json."""
    parser = OneLineArgumentParser(
        prog="nox -s reproducers --", label="reproducers",
        help_hint="nox -s reproducers -- --help",
        formatter_class=ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--python", default="3.12", help="the Python to run them on")
    add("--timeout", type=float, default=600, help="seconds a script may run")
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help (a mistake is a BadInput)
        return {}
    bisect_file = Path(results_dir, "bisect", f"numba-cuda-py{args.python}.json")
    bisect = load_json(bisect_file) or {}
    if not bisect.get("boundary"):
        raise BadInput(f"reproducers: {bisect_file} has no flip of the race "
                       f"(run `nox -s bisect -- --package numba-cuda --python "
                       f"{args.python}` first)")
    missing = missing_interpreters([args.python])
    if missing:
        raise BadInput(f"reproducers: {missing}")
    shown, newest = releases_to_show(bisect), bisect["releases"][-1]
    variants = [(*release, None) for release in shown] + [
        (*shown[-1], patch) for patch in declared_patches().values()
        if patch.diff_for("numba-cuda", newest)]
    entries = []
    for label, requirements, patch in variants:
        name = label.replace(" ", "-") + (f"+{patch.name}" if patch else "")
        env = ProbeEnvironment(Path(envdir, "reproducers", name), args.python)
        env.create()
        # as a reader installs them: today's index, not as of the upload
        subprocess.run(["uv", "pip", "install", "-q", "--python",
                        f"{env.bin}/python", *requirements, "numpy"],
                       check=True)
        if patch is not None:
            try:
                apply(env, patch, "numba-cuda", newest)
            except PatchError as error:
                logger.error("reproducers: %s", error)
                continue
        held = read_environment(env)
        runs = [run_script(f"{env.bin}/python", PROJECT / "mwe" / script,
                           args.timeout) for script in SCRIPTS]
        logger.info("reproducers: %s: exit %s (None: stopped at %g s)", name,
                    [run["exit"] for run in runs], args.timeout)
        entries.append({
            "label": label, "patch": patch.name if patch else None,
            "requirements": requirements, "python": held["python"],
            "packages": held["packages"], "runs": runs})
    recorded = {**stamp(command), "bisect": bisect_file.name,
                "entries": entries}
    write_json_atomic(Path(results_dir, "reproducers.json"), recorded)
    return recorded
