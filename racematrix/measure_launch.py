"""Launch time as a measurement: the MWE's timing workload
(``launch_time``) in a built environment, each launch in a fork of the
process that built its kernel, after the race suite, so that it never
changes the suite's rates (``launch_plugin``)."""
import json
import queue
import shlex
import subprocess
import threading
from pathlib import Path

from .fileio import write_text_atomic
from .rawresult import load_raw_dirs, machine_label
from .procs import die_with_parent, run_streaming, stop_process_group, \
    venv_environ
from .stats import quantile
from .suites import PROJECT

WORKLOAD = Path(__file__).resolve().parent / "launch_time.py"
# Handed to the suite's pytest from outside: the MWE holds no harness.
PLUGIN = "racematrix.launch_plugin"
# One matrix row's workload: bounded by the budget whatever the simulator.
LAUNCHES = 10
LIMIT = 20.0
BUDGET = 60.0
RESULT_PREFIX = '{"launch_seconds":'
# A matrix row's launches run the workload's own 1,000 device-function
# calls per thread. Shorter launches would cost less but hide the price:
# the fixed simulator's lock shows as stalls, and a stall needs a long
# launch (at 250 calls, numba-cuda 0.30.4 and 0.24.0 had the same median,
# 0.24 and 0.23 s; at 1,000, 1.09 and 0.87 s with a p95 of 2.84 and 0.97).
ROW_DEVICE_CALLS = 1000
# Where the timed allocator's buffer lives (racematrix/launch_time.py --location):
# a slice of the kernel's persistent array reads no attribute of `cuda`,
# so no launch is lost to the race; the swap (and the fix's lock) is the
# same on every call.
ROW_LOCATION = "persistent"
# A row's limit: this many times the reference's 95th percentile, within
# [ROW_LIMIT_FLOOR, LIMIT]. A launch past it is past 1.5 times that
# percentile too, so it counts as slow (sequential_decision); the size of
# a stall beyond it is the bisect on time's and mwe_figures' question.
ROW_LIMIT_FACTOR = 4.0
ROW_LIMIT_FLOOR = 2.0
# Without a reference (the first rows of an empty results folder).
NO_REFERENCE_LIMIT = 10.0


def row_limit(reference):
    """A matrix row's launch limit, from its reference (or None)."""
    if not reference:
        return NO_REFERENCE_LIMIT
    return round(min(LIMIT, max(ROW_LIMIT_FLOOR,
                                ROW_LIMIT_FACTOR * reference["p95"])), 3)


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
    """Run ``racematrix/launch_time.py`` in ``env`` (a nox Session or a
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


# A server's start: numba imported and the kernel built.
SERVER_START = 120.0
# Past a launch's limit: the fork's stacks (launch_time.KILL_GRACE), then
# the answer.
SERVER_GRACE = 10.0


class LaunchServer:
    """One environment's workload kept alive between launches
    (``launch_time.py --worker``): numba imported and the kernel built
    once, each launch run in a fork of it and killed there at its limit.
    Several releases' servers can then take launches in turn, one launch
    each, so that the machine's load over time falls on all of them alike.
    ``launch(limit)`` returns ("done" | "past" | "race", seconds) or
    ("error", why); a server that failed stays failed."""

    def __init__(self, env, sim, limit, workload_args=()):
        self.failed = None
        command = [str(Path(env.bin) / "python"), str(WORKLOAD), "--worker",
                   "--limit", str(limit), *workload_args]
        env.log(" ".join(command))
        self.process = subprocess.Popen(
            command, env=venv_environ(env.bin, {
                "NUMBA_ENABLE_CUDASIM": str(int(sim))}),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
            start_new_session=True, preexec_fn=die_with_parent)
        self.lines, self.tail = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()
        answer = self._answer(SERVER_START)
        if answer and answer[0] == "error":  # its own one-line reason
            self.failed = " ".join(answer[1:])
            self.close()
        elif answer != ["ready"]:
            self._fail("it did not start")

    def _read(self):
        for line in self.process.stdout:
            self.tail = (self.tail + [line.rstrip()])[-20:]
            words = line.split()
            if words and words[0] in ("ready", "done", "past", "race",
                                      "error"):
                self.lines.put(words)
        self.lines.put(None)

    def _answer(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def _fail(self, why):
        last = next((line for line in reversed(self.tail) if line.strip()),
                    "no output")
        self.failed = f"the launch-time worker failed: {why} ({last[:300]})"
        self.close()

    def launch(self, limit):
        if self.failed:
            return "error", self.failed
        try:
            self.process.stdin.write(f"go {limit}\n")
            self.process.stdin.flush()
        except OSError:
            self._fail("it exited")
            return "error", self.failed
        answer = self._answer(limit + SERVER_GRACE)
        if not answer or answer[0] not in ("done", "past", "race"):
            if answer and answer[0] == "error":
                self.tail.append(" ".join(answer[1:]))
            self._fail("no answer in time" if answer is None
                       else "a launch failed")
            return "error", self.failed
        return answer[0], float(answer[1])

    def close(self):
        if self.process.poll() is None:
            stop_process_group(self.process)


def workload_options(workload):
    """``racematrix/launch_time.py``'s options for workload settings such as
    ``{"device_calls": 1000}``: ``["--device-calls", "1000"]``."""
    return [arg for name, value in workload.items()
            for arg in (f"--{name.replace('_', '-')}", str(value))]


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
    """The workload's ``launch_seconds`` record for the raw result, timed in
    the suite's own pytest process once its tests have run
    (``launch_plugin``), each launch in a fork of that process:
    numba is imported once, the tests' rates are untouched, and a launch
    past the limit is killed without losing the process. At least
    ``launches`` launches, and up to ``max_launches`` while ``reference``
    (``reference_launches``) cannot yet tell the row apart from, or match
    it to, the simulators with the race; the rule is
    ``racematrix/launch_time.py``'s ``sequential_decision``. The limit is
    ``row_limit(reference)``.

    The stacks of the first launch past the limit are kept as
    ``launch_time_stacks/<env>.stack.txt`` in ``built.keep_dir``: the
    evidence of where the time goes."""
    name = "launch_seconds"

    def __init__(self, launches=3, max_launches=10, limit=None,
                 budget=BUDGET, reference=None,
                 device_calls=ROW_DEVICE_CALLS, location=ROW_LOCATION):
        self.device_calls = device_calls
        self.location = location
        self.launches = launches
        self.max_launches = max(max_launches, launches)
        self.limit = row_limit(reference) if limit is None else limit
        self.budget = budget
        self.reference = reference

    def _files(self, built):
        return (Path(built.scratch) / "launch_seconds.json",
                Path(built.scratch) / "launch_stack.txt")

    def options(self, built, stack):
        options = ["--launches", str(self.launches),
                   "--max-launches", str(self.max_launches),
                   "--limit", str(self.limit), "--budget", str(self.budget),
                   *workload_options({"device_calls": self.device_calls,
                                      "location": self.location}),
                   "--stack-file", str(stack)]
        if self.reference:
            options += ["--reference-median", str(self.reference["median"]),
                        "--reference-p95", str(self.reference["p95"])]
        return options

    def suite_args(self, built):
        record, stack = self._files(built)
        stack.write_text("")
        return ("-p", PLUGIN, "--launch-time-json", str(record),
                "--launch-time-options", shlex.join(self.options(built, stack)))

    def suite_env(self, built):
        """What the suite's pytest process needs to import the plugin."""
        return {"PYTHONPATH": str(PROJECT)}

    def measure(self, built):
        path, stack = self._files(built)
        try:
            record = json.loads(path.read_text())["launch_seconds"]
        except (OSError, ValueError, KeyError):
            record = empty_record(self.limit, self.budget,
                                  "the suite's process wrote no launch-time "
                                  "record")
        record["concurrency"] = built.running()
        if self.reference:
            record["reference"] = self.reference
        if built.keep_dir and stack.exists() and stack.stat().st_size:
            kept = Path(built.keep_dir) / "launch_time_stacks" / \
                f"{built.spec.env_id}.stack.txt"
            write_text_atomic(kept, stack.read_text(errors="replace"))
            record["stack_file"] = f"launch_time_stacks/{kept.name}"
        return {"launch_seconds": record}


# Fewest launches a reference must pool before the rule uses it.
MIN_REFERENCE = 10


def reference_launches(raw_dir, python, concurrency, exclude=None,
                       device_calls=ROW_DEVICE_CALLS, location=ROW_LOCATION,
                       fallback=None, machine=None):
    """What the launches of a row on ``python`` are compared with: the
    pooled launch times of the MWE's unpatched rows with the race on the
    same Python (X.Y) in ``raw_dir`` timed with the same workload (``device_calls``
    per thread, the allocator's buffer at ``location``; records from
    before the location was an option timed "local"), from the rows timed
    at the same ``concurrency`` (sessions running at once) where they hold
    ``MIN_REFERENCE`` launches, else from all of them; their ``median``,
    ``p95`` and ``max``; else the same from ``fallback`` (the checkout's
    committed rows: a run into an empty folder hands out the rows without
    the race first, as its longest); else None (the row then takes a
    fixed count). With ``machine`` (a machine label), only rows timed on
    that machine count: another machine's launches say nothing of this
    one's."""
    found = _reference(raw_dir, python, concurrency, exclude, device_calls,
                       location, machine)
    if found is None and fallback is not None and \
            Path(fallback).resolve() != Path(raw_dir).resolve():
        found = _reference(fallback, python, concurrency, exclude,
                           device_calls, location, machine)
    return found


def _reference(raw_dir, python, concurrency, exclude, device_calls,
               location, machine):
    minor = ".".join(str(python).split(".")[:2])
    pools = {"same": [], "any": []}
    for _, record in load_raw_dirs(sorted(Path(raw_dir).glob("*.json"))):
        try:
            launch = record.get("launch_seconds") or {}
            samples = [float(s) for s in launch.get("samples") or []]
            row_minor = ".".join(record["python"].split(".")[:2])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        workload = launch.get("workload") or {}
        if (record.get("suite", "mwe") != "mwe" or row_minor != minor
                or workload.get("device_calls") != device_calls
                or workload.get("location", "local") != location
                or record.get("verdict") != "reproduced"
                # A patched row with the race (an attribution experiment)
                # is not a release as published.
                or record.get("patch")
                or record.get("env") == exclude or not samples
                or (machine is not None
                    and machine_label(record) != machine)):
            continue
        pools["any"] += samples
        if launch.get("concurrency", record.get("concurrency")) == concurrency:
            pools["same"] += samples
    for kind in ("same", "any"):
        if len(pools[kind]) >= MIN_REFERENCE:
            samples = pools[kind]
            return {"median": round(quantile(samples, 0.5), 6),
                    "p95": round(quantile(samples, 0.95), 6),
                    "max": round(max(samples), 6),
                    "n": len(samples), "python": minor,
                    "concurrency": concurrency if kind == "same" else "any"}
    return None
