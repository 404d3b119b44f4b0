"""One environment's raw result (``results/raw/<env>.json``): its verdict,
the record every writer holds to ``schemas/raw.schema.json``, and loading
records back for the tables."""
import json
import warnings
from functools import lru_cache
from pathlib import Path

from .provenance import now_iso
from .validation import SCHEMAS, problem

SCHEMA = 1
VERDICTS = ("reproduced", "not-reproduced", "hung", "error", "skipped")


class RawResultWarning(UserWarning):
    """A raw result file was left out of the tables."""


class NoUsableResults(ValueError):
    """Every input was left out (or there was none): writing tables from
    nothing would replace good ones with empty ones."""


def decide_verdict(counts, env_error=None, skip_reason=None):
    """The verdict and its reason for one environment.

    One target failure is enough for "reproduced": the race's signature
    cannot appear without the race. Runs that only hung (past the timeout)
    make it "hung": on a fixed simulator a hang is the slowdown's symptom,
    neither the race nor a broken environment. Anything else that went
    wrong without a target failure makes the environment an "error", never
    a pass.
    """
    runs = counts["target"] + counts["other"] + counts["hang"] + counts["pass"]
    if skip_reason:
        return "skipped", skip_reason
    if env_error:
        return "error", env_error
    if counts["target"]:
        return "reproduced", (f"{counts['target']} of {runs} test runs failed "
                              f"with the race's AttributeError")
    if counts["hang"] and not counts["other"]:
        return "hung", (f"no race failure; {counts['hang']} of {runs} test "
                        f"runs hung (past the timeout), none failed another "
                        f"way")
    if counts["hang"]:
        return "error", (f"no race failure, but {counts['hang']} of {runs} "
                         f"test runs hung and {counts['other']} failed "
                         f"another way")
    if counts["other"]:
        return "error", (f"{counts['other']} of {runs} test runs failed with "
                         f"another error")
    if runs == 0:
        if counts["skip"]:
            return "skipped", "every test was skipped"
        return "error", "no test ran"
    return "not-reproduced", f"0 of {runs} test runs failed"


def current_verdict(record):
    """A raw record's verdict and reason as ``decide_verdict`` gives them
    today: a record written before `hung` existed, whose only failures are
    hangs, reads `hung` (its counts say so; a row that ran has no
    environment error)."""
    if record["runs"] and record["verdict"] == "error" and \
            record.get("hangs") and not record["failures"] and \
            not record["other_errors"]:
        return decide_verdict({"target": 0, "other": 0,
                               "hang": record["hangs"],
                               "pass": record["runs"] - record["hangs"],
                               "skip": record.get("skips", 0)})
    return record["verdict"], record["reason"]


def make_raw(spec, *, packages, python, python_build, counts=None, summary=None,
             env_error=None, skip_reason=None, seconds=0.0, settings=None,
             concurrency=1, machine=None, command="", started=None,
             pytest_seconds=0.0, resolution=None, launch_seconds=None,
             patch=None, kinds=None, pytest_output=None):
    """The raw record of one environment's run: ``resolution`` says how
    the environment was installed, ``launch_seconds`` what its launches
    cost (both where measured)."""
    counts = counts or {"target": 0, "other": 0, "hang": 0, "pass": 0,
                        "skip": 0}
    verdict, reason = decide_verdict(counts, env_error, skip_reason)
    runs = counts["target"] + counts["other"] + counts["hang"] + counts["pass"]
    return {
        "schema": SCHEMA,
        "env": spec.env_id,
        "suite": spec.suite,
        "spec": {"python": spec.python, "requirements": list(spec.requirements),
                 "sim": spec.sim,
                 **({"patch": spec.patch} if spec.patch else {})},
        "target": spec.target,
        "python": python,
        "python_build": python_build,
        "sim": spec.sim,
        "packages": packages,
        "settings": settings or {},
        "runs": runs,
        "failures": counts["target"],
        "other_errors": counts["other"],
        "hangs": counts["hang"],
        "skips": counts["skip"],
        "verdict": verdict,
        "reason": reason,
        "seconds": round(seconds, 2),
        "pytest_seconds": pytest_seconds,
        "concurrency": concurrency,
        "summary": summary or {},
        **({"kinds": kinds} if kinds else {}),
        **({"pytest_output": pytest_output} if pytest_output else {}),
        "machine": machine or {},
        "command": command,
        "started": started or now_iso(),
        "finished": now_iso(),
        **({"resolution": resolution} if resolution else {}),
        **({"launch_seconds": launch_seconds} if launch_seconds else {}),
        **({"patch": patch} if patch else {}),
    }


@lru_cache(maxsize=1)
def measurement_fields():
    """The raw fields that a measurement writes and a schema of
    ``schemas/raw-fields/`` describes."""
    return frozenset(path.name.removesuffix(".schema.json") for path in
                     (SCHEMAS / "raw-fields").glob("*.schema.json"))


def validate_raw(data):
    """Return the problem with a raw record in one line, or None if it is
    usable: checked against ``schemas/raw.schema.json``, the file that every
    writer of raw results (other machines, CI jobs) is held to, then for
    counts that cannot add up."""
    wrong = problem(data, "raw", "record")
    if wrong:
        return wrong
    # Each measurement's field against its own schema (see measurement.py).
    for field in sorted(set(data) & measurement_fields()):
        wrong = problem(data[field], f"raw-fields/{field}", f"record.{field}")
        if wrong:
            return wrong
    if data["failures"] > data["runs"]:
        return (f"failures ({data['failures']}) exceed runs ({data['runs']})")
    return None


def load_raw_dirs(dirs, left_out=None):
    """Every usable raw record under ``dirs`` (folders or files). Unreadable
    or malformed files are named in a warning and left out, and listed in
    ``left_out`` (as {path, reason}) where given, for the tables and the
    report to name them too."""
    def leave_out(path, reason):
        warnings.warn(f"left out {path}: {reason}", RawResultWarning,
                      stacklevel=3)
        if left_out is not None:
            left_out.append({"path": str(path), "reason": reason})

    records = []
    for source in dirs:
        source = Path(source)
        files = sorted(source.rglob("*.json")) if source.is_dir() else [source]
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as error:
                leave_out(path, f"not readable JSON ({error})")
                continue
            problem = validate_raw(data)
            if problem:
                leave_out(path, problem)
                continue
            records.append((path, data))
    return records


def machine_label(record):
    machine = record.get("machine") or {}
    return machine.get("label") or machine.get("hostname") or "unknown"
