"""Launch time as a measurement: the MWE's timing workload
(``mwe/launch_time.py``) in a built environment, in processes of its own
after the race suite, so that it never changes the suite's rates."""
import json
from pathlib import Path

from .fileio import scratch_folder, write_text_atomic
from .procs import run_streaming
from .stats import quantile
from .suites import MWE

WORKLOAD = MWE / "launch_time.py"
# One matrix row's workload: bounded by the budget whatever the simulator.
LAUNCHES = 10
LIMIT = 20.0
BUDGET = 60.0
RESULT_PREFIX = '{"launch_seconds":'


def workload_command(launches=LAUNCHES, limit=LIMIT, budget=BUDGET,
                     stack_file=None, workload_args=()):
    command = ["python", str(WORKLOAD), "--launches", str(launches),
               "--limit", str(limit), "--budget", str(budget),
               *workload_args]
    if stack_file:
        command += ["--stack-file", str(stack_file)]
    return command


def run_launch_time(env, sim, *, launches=LAUNCHES, limit=LIMIT,
                    budget=BUDGET, stack_file=None, workload_args=(),
                    echo=False):
    """Run ``mwe/launch_time.py`` in ``env`` (a nox Session or a
    ``runner.ProbeEnvironment``) and return its ``launch_seconds`` record.

    The workload bounds its own time by ``budget`` (plus the start of its
    worker processes). When it prints no record, the record has ``n`` 0 and
    an ``error`` naming the last line it printed."""
    returncode, tail = run_streaming(
        env, workload_command(launches, limit, budget, stack_file,
                              workload_args),
        {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, echo)
    record = parse_workload_output(tail)
    if record is None:
        last = next((line for line in reversed(tail) if line.strip()),
                    "no output")
        return empty_record(limit, budget, f"the launch-time workload exited "
                                           f"{returncode} without a result: "
                                           f"{last.strip()[:300]}")
    return record


def parse_workload_output(lines):
    """The ``launch_seconds`` record from the workload's output lines (the
    last such line), or None."""
    for line in reversed(lines):
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(line)["launch_seconds"]
            except (ValueError, KeyError):
                return None
    return None


def empty_record(limit, budget, error):
    return {**summarize_launches([], limit), "limit": limit, "budget": budget,
            "workload": {}, "samples": [], "error": error}


def summarize_launches(samples, limit):
    """``n``, ``median``, ``p95``, ``max`` and ``past_limit`` of launch
    times, where a launch past the limit was recorded at the limit."""
    return {"n": len(samples), "median": quantile(samples, 0.5),
            "p95": quantile(samples, 0.95),
            "max": max(samples) if samples else None,
            "past_limit": sum(1 for s in samples if s >= limit)}


class LaunchTime:
    """The workload's ``launch_seconds`` record for the raw result. The
    stacks of its first launch past the limit, where there was one, are
    kept as ``launch_time_stacks/<env>.stack.txt`` in ``built.keep_dir``:
    the evidence of where the time goes."""
    name = "launch_seconds"

    def __init__(self, launches=LAUNCHES, limit=LIMIT, budget=BUDGET,
                 workload_args=()):
        self.options = dict(launches=launches, limit=limit, budget=budget,
                            workload_args=tuple(workload_args))

    def measure(self, built):
        built.log("launch-time workload (bounded: a limit per launch and a "
                  "budget; see mwe/README.md)")
        with scratch_folder() as scratch:
            stack = Path(scratch) / "stack.txt"
            record = run_launch_time(built.venv, built.spec.sim,
                                     stack_file=stack, **self.options)
            if built.keep_dir and stack.exists() and stack.stat().st_size:
                kept = Path(built.keep_dir) / "launch_time_stacks" / \
                    f"{built.spec.env_id}.stack.txt"
                write_text_atomic(kept, stack.read_text(errors="replace"))
                record["stack_file"] = f"launch_time_stacks/{kept.name}"
        return {"launch_seconds": record}
