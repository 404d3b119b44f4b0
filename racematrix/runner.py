"""Running the MWE in one environment and recording the result.

Called by the noxfile's sessions with a nox ``Session``; everything here
runs in nox's own process and uses the session only to reach its virtual
environment.
"""
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from . import outcomes, report, results
from .client_report import suite_evidence
from .companions import Installation, Ladder
from .index import IndexLookupError, list_releases, nearest_versions
from .provenance import gpu_name, machine_info

PROJECT = Path(__file__).resolve().parent.parent
MWE = PROJECT / "mwe"
TEST_TOOLS = ("numpy", "pytest", "pytest-repeat", "pytest-timeout")
# What the runner itself passes to pytest needs: --count and --timeout.
RUNNER_TOOLS = ("pytest", "pytest-repeat", "pytest-timeout")

READ_ENVIRONMENT = r"""
import json, platform, sys
from importlib import metadata
# Every distribution in the environment, by its normalised name: what
# anyone needs to rebuild it.
import re
packages = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        packages[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
packages = dict(sorted(packages.items()))
print(json.dumps({"python": platform.python_version(),
                  "python_build": f"{platform.python_implementation()} "
                                  f"{sys.version}".replace("\n", " "),
                  "packages": packages}))
"""


class BadInput(ValueError):
    """The user asked for something that does not exist; one line says so."""


class ProbeEnvironment:
    """A virtual environment made outside a nox session (bisect probes, the
    MWE's figures); looks like the part of a nox Session the runner uses."""
    venv_backend = "uv"

    def __init__(self, location, python, log):
        # Absolute: the suite runs from a scratch folder.
        self.location = Path(location).absolute()
        self.bin = str(self.location / "bin")
        self.python = python
        self.log = log

    def create(self):
        if (self.location / "bin" / "python").exists():
            return
        subprocess.run(["uv", "venv", "-q", "-p", self.python,
                        str(self.location)], check=True,
                       env={"UV_PYTHON_DOWNLOADS": "never", **os.environ})


def venv_python(session):
    return str(Path(session.bin) / "python")


def install(session, spec, timeout=900):
    """Install the spec and the test tools, wheels only. Returns None on
    success, else (kind, reason): "skip" (no wheel for this Python, or a
    yanked release), "bad-input" (no such release or package) or "error".
    ``install_resolved`` says how."""
    return install_resolved(session, spec, timeout=timeout).problem


def install_resolved(session, spec, log=None, timeout=900, every_way=False,
                     suite=None):
    """Install the spec by the first way of the companion ladder that
    installs, imports and passes a smoke launch (see
    ``racematrix.companions``); returns the ``Installation``, whose
    ``resolution()`` goes into the raw result."""
    if shutil.which("uv") is None:
        return Installation(problem=install_with_pip(session, spec, timeout),
                            way="as-asked",
                            requirements=[*spec.requirements, *TEST_TOOLS])
    suite = suite or MWE_SUITE
    # A suite's own smoke code replaces our launch; the code under test
    # must still come from numba-cuda where the spec names it.
    provider = spec.target if suite.smoke is None or \
        spec.target == "numba-cuda" else None
    tools = tuple(dict.fromkeys([*RUNNER_TOOLS, *suite.requirements]))
    ladder = Ladder(venv_python(session), tools=tools,
                    classify=lambda output: classify_install_failure(output, spec),
                    smoke=suite_smoke(suite.smoke) if suite.smoke else
                    SMOKE_LAUNCH, module=MODULE_UNDER_TEST,
                    provider=provider,
                    sim_environ=venv_environ(session.bin,
                                             {"NUMBA_ENABLE_CUDASIM": "1"}),
                    log=log or session.log, timeout=timeout)
    return ladder.install(spec.requirements, every_way=every_way)


def install_with_pip(session, spec, timeout=900):
    """The spec as asked, with pip, where uv is not available."""
    command = [venv_python(session), "-m", "pip", "install",
               "--only-binary=:all:", "--disable-pip-version-check",
               *spec.requirements, *TEST_TOOLS]
    session.log(" ".join(command))
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode == 0:
        return None
    return classify_install_failure(done.stdout + done.stderr, spec)


def classify_install_failure(output, spec):
    """Why an install failed: ("skip", reason) when the index has no wheel
    for this Python; ("bad-input", reason) when the spec names a version or
    package the index does not have; ("error", reason) otherwise."""
    no_wheel = re.search(
        r"([\w.-]+==[\w.]+) has no (?:usable wheels|wheels with a matching "
        r"Python)", output)
    if no_wheel:
        return "skip", (f"no wheel of {no_wheel.group(1)} for Python "
                        f"{spec.python}")
    python_bound = re.search(
        r"([\w.-]+==[\w.]+) depends on Python([<>=!~][^ ,]*(?:,[<>=!~][^ ,]*)*)",
        output)
    if python_bound:
        return "skip", (f"{python_bound.group(1)} needs Python"
                        f"{python_bound.group(2)}, not {spec.python}")
    pip_missing = re.search(
        r"No matching distribution found for ([\w.-]+)==([\w.]+)", output)
    if pip_missing:
        # pip says the same whether the release lacks a wheel for this
        # Python or does not exist: ask the index which it is.
        name, version = pip_missing.groups()
        try:
            known = Version(version) in list_releases(name)
        except IndexLookupError:
            known = False
        if known:
            return "skip", f"no wheel of {name}=={version} for Python {spec.python}"
        return "bad-input", unknown_version_message(name, version)
    missing = re.search(r"there is no version of ([\w.-]+)==([\w.]+)", output)
    if missing:
        return "bad-input", unknown_version_message(missing.group(1),
                                                    missing.group(2))
    unknown = re.search(r"([\w.-]+) was not found in the package registry",
                        output)
    if unknown:
        return "bad-input", (f"{unknown.group(1)} is not on the package "
                             f"index; check the name in the spec")
    cause = re.search(r"(?:cause|error|ERROR): (.*(?:\n +\S.*)*)", output)
    text = " ".join((cause.group(1) if cause else output.strip()).split())
    return "error", f"install failed: {text[:400]}"


# The module whose code is under test, and a smoke launch of it: one
# simulated thread (no race possible) calling cuda.local.array inside a
# device function. It prints a JSON line once the module is imported and
# another once the launch has returned (read by companions.parse_smoke).
MODULE_UNDER_TEST = "numba.cuda"
SMOKE_LAUNCH = r"""
import importlib, json, sys
from importlib import metadata
from pathlib import Path
module = importlib.import_module(sys.argv[1])
path = Path(module.__file__).resolve()
# The deepest sys.path entry holding it: a project folder on PYTHONPATH
# may hold the environment too.
roots = [Path(entry).resolve() for entry in sys.path
         if entry and Path(entry).is_dir()]
roots = [root for root in roots if path.is_relative_to(root)]
top = path.relative_to(max(roots, key=lambda r: len(r.parts))).parts[0] \
    if roots else None
owners = metadata.packages_distributions().get(top, [])
print(json.dumps({"stage": "imported", "implementation": {
    "module": sys.argv[1], "distribution": owners[0] if owners else None,
    "path": str(path.parent)}}), flush=True)
import numpy as np
from numba import cuda, float64

@cuda.jit(device=True)
def scratch_sum(i):
    tmp = cuda.local.array(2, float64)
    tmp[0] = i
    tmp[1] = 1.0
    return tmp[0] + tmp[1]

@cuda.jit
def kernel(out):
    out[0] = scratch_sum(0)

out = np.zeros(1)
kernel[1, 1](out)
assert out[0] == 1.0, out
print(json.dumps({"stage": "launched"}), flush=True)
"""


def suite_smoke(code):
    """A suite's smoke code in the shape the ladder reads: where the module
    under test comes from (if it imports at all), then the suite's code."""
    head = SMOKE_LAUNCH.split("import numpy as np", 1)[0]
    return ("import importlib, json, sys\n"
            "try:\n" + "\n".join("    " + line for line in
                                 head.strip().splitlines()) +
            "\nexcept ImportError:\n"
            "    print(json.dumps({'stage': 'imported', 'implementation': "
            "{'module': sys.argv[1], 'distribution': None, 'path': None}}))\n"
            + code + "\nprint(json.dumps({'stage': 'launched'}), flush=True)\n")


def unknown_version_message(name, version):
    try:
        near = nearest_versions(version, list_releases(name))
    except IndexLookupError:
        near = []
    hint = f"; nearest on the index: {', '.join(near)}" if near else ""
    return f"{name}=={version} is not on the package index{hint}"


def read_environment(session):
    done = subprocess.run([venv_python(session), "-c", READ_ENVIRONMENT],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the environment: {done.stderr}")
    return json.loads(done.stdout)


@contextmanager
def running_marker(results_dir, env_id):
    """Mark this session as running, so each row can say how many
    matrix sessions ran at once (load changes a race's rate)."""
    folder = Path(results_dir) / ".running"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{env_id}.{os.getpid()}"
    marker.write_text(str(os.getpid()))
    try:
        yield lambda: count_running(folder)
    finally:
        marker.unlink(missing_ok=True)


def count_running(folder):
    alive = 0
    for marker in Path(folder).iterdir():
        pid = marker.suffix.lstrip(".")
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            marker.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass
        alive += 1
    return alive


def pytest_command(count, timeout, junit_path, pytest_args, path=MWE):
    return ["python", "-m", "pytest", str(path), "-p", "no:cacheprovider",
            "--count", str(count), f"--timeout={timeout}",
            f"--junitxml={junit_path}",
            "-q", "-rN", "--tb=line", *pytest_args]


@dataclass(frozen=True)
class SuiteRun:
    """What the runner needs of a suite (``racematrix.suites.Suite`` has
    it): its tests' folder, the tools it installs, its signature of the
    bug, extra pytest arguments, and its own smoke code (None: ours)."""
    name: str = "mwe"
    path: Path = MWE
    requirements: tuple = TEST_TOOLS
    signature: re.Pattern = outcomes.RACE_SIGNATURE
    pytest_args: tuple = ()
    smoke: str | None = None


MWE_SUITE = SuiteRun()


def run_environment(session, spec, *, count, timeout, results_dir,
                    pytest_args=(), command="", tables_command="nox -s matrix",
                    suite=MWE_SUITE, launch_time=None):
    """Build one environment, run the suite in it, and record the raw
    result (and regenerate the tables). ``launch_time`` (keyword arguments
    of ``timing.run_launch_time``, or None for none) adds the launch-time
    workload, run after the suite in its own processes so that it never
    changes the suite's rates. Returns the raw record."""
    started_at = results.now_iso()
    clock = time.monotonic()
    base = dict(machine=machine_info(), command=command, started=started_at)
    nothing = dict(packages={}, python="", python_build="")

    def finish(**fields):
        raw = results.make_raw(spec, seconds=time.monotonic() - clock,
                               **{**base, **fields})
        record(raw, results_dir, tables_command)
        return raw

    if not spec.sim and not gpu_name():
        return finish(skip_reason="no CUDA GPU (simulator off needs one)",
                      **nothing)
    installation = install_resolved(session, spec, suite=suite)
    base["resolution"] = installation.resolution()
    problem = installation.problem
    if problem:
        kind, reason = problem
        if kind == "bad-input":  # not a measurement: no row for it
            raise BadInput(reason)
        if kind == "skip":
            return finish(skip_reason=reason, **nothing)
        return finish(env_error=reason, **nothing)
    environment = read_environment(session)
    with running_marker(results_dir, spec.env_id) as running:
        concurrency = running()
        run = run_mwe(session, spec.sim, count, timeout,
                      [*suite.pytest_args, *pytest_args], suite=suite)
        concurrency = max(concurrency, running())
        usage = usage_error(run)
        if usage:  # the user's arguments, not the environment: no row
            raise BadInput(usage)
        if launch_time is not None and run.runs is not None:
            base["launch_seconds"] = measure_launches(
                session, spec, results_dir, launch_time)
    base["pytest_seconds"] = round(run.seconds, 2)
    if run.runs is None:
        return finish(env_error=run.no_report_reason(),
                      concurrency=concurrency, **environment)
    summary = outcomes.summarize(run.runs, count)
    summary.update(run.evidence or {})
    settings = {key: value for key, value in run.suite.items()
                if key not in environment["packages"]}
    return finish(counts=summary.pop("counts"), summary=summary,
                  settings=settings, concurrency=concurrency, **environment)


def measure_launches(session, spec, results_dir, options):
    """The launch-time workload's record for this environment. The stacks
    of its first launch past the limit, where there was one, are kept as
    ``launch_time_stacks/<env>.stack.txt`` beside the tables: the evidence
    of where the time goes."""
    from .timing import run_launch_time
    session.log("launch-time workload (bounded: a limit per launch and a "
                "budget; see mwe/README.md)")
    with tempfile.TemporaryDirectory() as scratch:
        stack = Path(scratch) / "stack.txt"
        record = run_launch_time(session, spec.sim, stack_file=stack,
                                 **options)
        if stack.exists() and stack.stat().st_size:
            kept = Path(results_dir) / "launch_time_stacks" / \
                f"{spec.env_id}.stack.txt"
            results.write_text_atomic(kept, stack.read_text(errors="replace"))
            record["stack_file"] = f"launch_time_stacks/{kept.name}"
    return record


@dataclass
class MweRun:
    """One pytest run of the MWE: its exit code, last output lines, wall
    time, and what its JUnit XML says (None for both without a report)."""
    returncode: int
    tail: list
    seconds: float
    suite: dict | None
    runs: list | None
    evidence: dict | None = None

    def no_report_reason(self):
        return (f"pytest exited {self.returncode} without a report: "
                f"{first_error_line(self.tail)}")


def run_mwe(env, sim, count, timeout, pytest_args=(), echo=True,
            suite=MWE_SUITE):
    """Run a suite (the MWE unless told) once in ``env`` (a nox Session or
    a ProbeEnvironment), from a scratch folder: what its code writes to
    the working folder (CuBIE generates code there) goes with it."""
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        started = time.monotonic()
        returncode, tail = run_streaming(
            env, pytest_command(count, timeout, junit, pytest_args,
                                suite.path),
            {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, echo, cwd=scratch)
        seconds = time.monotonic() - started
        name = suite.name
        try:
            suite, runs = outcomes.parse_junit(junit, suite.signature)
            evidence = None if name == MWE_SUITE.name else \
                suite_evidence(runs, junit)
        except outcomes.JUnitError:
            suite, runs, evidence = None, None, None
    return MweRun(returncode, tail, seconds, suite, runs, evidence)


def venv_environ(bin_dir, extra_env):
    """The process environment of a command run inside a virtual env.

    PYTHONDONTWRITEBYTECODE, set on some machines, is dropped: uv installs
    no bytecode, so every run would compile numba from source again (about
    1 s of each run); these environments are ours to cache in.
    """
    environ = {key: value for key, value in os.environ.items()
               if key != "PYTHONDONTWRITEBYTECODE"}
    bin_dir = Path(bin_dir).absolute()  # commands may run from elsewhere
    return {**environ, **extra_env,
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(bin_dir.parent)}


def run_streaming(session, command, extra_env, echo=True, cwd=None):
    """Run a command in the session's environment, passing its output
    through (unless ``echo`` is false); returns (exit code, its last
    lines). An interrupt (Ctrl-C, SIGTERM) ends the command and its threads
    before it goes on up, and the command dies with this process even if
    this process is killed outright."""
    env = venv_environ(session.bin, extra_env)
    session.log(" ".join(map(str, command)))
    tail = []
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True,
                               cwd=cwd,
                               preexec_fn=die_with_parent)
    try:
        for line in process.stdout:
            if echo:
                sys.stdout.write(line)
            tail = (tail + [line.rstrip()])[-60:]
        sys.stdout.flush()
        process.wait()
    except BaseException:
        stop_process_group(process)
        raise
    finally:
        process.stdout.close()
    return process.returncode, tail


def stop_process_group(process, grace=2.0):
    """End ``process`` and everything in its process group: SIGTERM, then
    SIGKILL after ``grace`` seconds. A simulated kernel's threads do not
    stop for a KeyboardInterrupt in the main thread; a signal to the whole
    group does."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def die_with_parent():
    """In the child, before exec: ask Linux to SIGKILL it when its parent
    dies (nox killed by SIGKILL, a CI runner's cancellation); elsewhere a
    no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    with contextlib.suppress(OSError, AttributeError):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                signal.SIGKILL)


def terminate_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt in this (main) thread, so that a
    CI job's cancellation stops a run the way Ctrl-C does: children ended,
    finished rows kept. Call from the main thread."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, interrupt)


# pytest's exit codes for "your arguments are wrong" and "nothing to run".
PYTEST_USAGE_ERROR = 4
PYTEST_NO_TESTS = 5


def usage_error(run):
    """One line for a pytest run that rejected its arguments or collected
    nothing, in pytest's own words; None for a run that ran."""
    if run.returncode == PYTEST_USAGE_ERROR:
        line = next((line.strip() for line in reversed(run.tail)
                     if re.search(r"\berror:", line)), None)
        line = line or first_error_line(run.tail)
        return (f"pytest rejected the arguments after `--`: "
                f"{line.removeprefix('ERROR: ')} (see `pytest --help` in "
                f"mwe/, or README.md: Options)")
    if run.returncode == PYTEST_NO_TESTS:
        selected = next((line.strip() for line in run.tail
                         if "deselected" in line or "collected" in line),
                        "no tests ran")
        return (f"pytest ran no test ({selected}): check -k/-m and the "
                f"test names after `--`")
    return None


def first_error_line(lines):
    """The line that names the error in pytest's output: an exception line
    of a traceback (``E   ...Error: ...``) first, else the last line."""
    for pattern in (r"^E\s+[\w.]*(Error|Exception)\b", r"^[\w.]*(Error|Exception)\b"):
        for line in lines:
            if re.match(pattern, line.strip()):
                return line.strip().removeprefix("E ").strip()[:300]
    return (lines[-1].strip() if lines else "no output")[:300]


def record(raw, results_dir, command):
    """Write the raw file and regenerate the tables, REPORT.md and the plot,
    as one step that other sessions wait for: after any run, parallel or
    not, all of them come from the same rows."""
    results_dir = Path(results_dir)
    problem = results.validate_raw(raw)
    if problem:  # ours to fix: the writer must hold to the schema
        raise RuntimeError(f"raw result of {raw['env']} breaks "
                           f"schemas/raw.schema.json: {problem}")
    with results.results_lock(results_dir):
        results.write_json_atomic(results_dir / "raw" / f"{raw['env']}.json",
                                  raw)
        rebuild(results_dir, command)


def rebuild(results_dir, command):
    """Tables, REPORT.md and, where matplotlib is importable here (nox's
    own environment has it), the plot; else `nox -s report` draws it."""
    try:
        import matplotlib  # noqa: F401
        plot = True
    except ImportError:
        plot = False
    report.build_report([results_dir / "raw"], results_dir,
                        results_dir / "bisect", command, plot=plot)


def record_missing_interpreters(envs, missing, results_dir,
                                command="nox -s matrix"):
    """A `skipped` row, whose reason says how to install the Python, for
    each environment of a missing Python that has no row from this
    machine yet; an earlier result is never replaced by a skip."""
    written = 0
    results_dir = Path(results_dir)
    with results.results_lock(results_dir):
        for spec in envs:
            if spec.python not in missing:
                continue
            path = results_dir / "raw" / f"{spec.env_id}.json"
            if path.exists():
                continue
            raw = results.make_raw(
                spec, packages={}, python="", python_build="",
                skip_reason=missing[spec.python], machine=machine_info(),
                command=command)
            results.write_json_atomic(path, raw)
            written += 1
        if written:
            rebuild(results_dir, command)
    return written


def session_command(session_name, posargs, environ=os.environ):
    """The command that reruns one session, with the MATRIX_* variables
    that shaped it, for provenance."""
    variables = " ".join(f"{name}={shlex.quote(environ[name])}" for name in
                         ("MATRIX_PYTHONS", "MATRIX_SPECS", "MATRIX_SIM")
                         if name in environ)
    command = f"nox -s {shlex.quote(session_name)}"
    if posargs:
        command += " -- " + shlex.join(posargs)
    return f"{variables} {command}".strip()


def split_count(posargs, default):
    """pytest arguments for a run, with ``--count`` taken out (the runner
    passes it, and needs it to read test names)."""
    args = list(posargs)
    count = default
    for i, arg in enumerate(args):
        if arg == "--count" and i + 1 == len(args):
            raise BadInput("--count needs a value: a positive whole number, "
                           "e.g. `-- --count 20`")
        if arg == "--count":
            value = args[i + 1]
            del args[i:i + 2]
            break
        if arg.startswith("--count="):
            value = arg.split("=", 1)[1]
            del args[i]
            break
    else:
        return count, args
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"--count needs a positive whole number, got {value!r}")
    return int(value), args
