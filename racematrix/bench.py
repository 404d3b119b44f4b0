"""The driver of ``nox -s bench``: what the project's own commands cost on
this machine, side by side, in one run.

* where the launch workload's size stops telling the releases without the
  race (the fix's lock) from those with it: every committed release's
  environment timed in turn at 1,000 down to 100 calls a thread, each
  placed by the matrix rows' rule (``workload``);
* the default matrix (``nox -s matrix -j auto``, the MWE, as users run
  it) cold (an empty uv cache and no environment), warm (the same
  environments again), and warm without the launch-time evidence
  (``MATRIX_LAUNCHES=0``), so that the evidence's price is a ratio;
* warm, one session at a time (no ``-j``): the sum of what the sessions
  cost alone, so half of it is the least the warm matrix could take on
  two cores however its sessions were scheduled;
* the MWE rows of one Python (``DEFAULTS_PYTHON``) under nox's own
  defaults (virtualenv and pip, one session at a time, environments
  recreated) beside the project's warm run of the same rows
  (``defaults``);
* a session that cannot run here (simulator off, no GPU), alone;
* the bisect on launch time (``nox -s bisect -- --package numba-cuda
  --python 3.12 --metric launch-time``), as a user's checkout runs it (the
  committed race bisects beside it, whose flip it probes first), on an
  otherwise idle machine and under load: beside the warm matrix (``-j
  auto``), stopped once the bisect ends; and from the middle (``--guess
  none``), idle;
* the project's own tests (``nox -s tests``), in a fresh clone.

Each part runs against scratch folders, never the project's ``results/``;
the figures go to ``results/bench.md`` and ``.json``. ``-- --parts`` picks
some parts (the others keep their last figures).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .markdown import table
from .provenance import machine_info, now_iso
from .rawresult import load_raw_dirs

PROJECT = Path(__file__).resolve().parent.parent
PARTS = ("workload", "cold", "warm", "warm-no-launches", "warm-serial",
         "defaults", "sim-off",
         "time-bisect", "time-bisect-loaded", "time-bisect-blind", "tests")
TIME_BISECT = ("--package", "numba-cuda", "--python", "3.12", "--metric",
               "launch-time")


def parse_args(argv):
    parser = OneLineArgumentParser(prog="nox -s bench --", label="bench",
                                   help_hint="nox -s bench -- --help")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of "
                             f"{', '.join(PARTS)} (default: all)")
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.parts.split(",")
                  if part.strip()]
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        raise BadInput(f"bench: unknown part {unknown[0]!r}; the parts are "
                       f"{', '.join(PARTS)}")
    return args


# The bench's host loop: how fast this host runs, timed just before each
# part (a host that slows the whole machine moves every figure with it).
HOST_LOOP = 5_000_000


def host_loop_seconds(repeats=3):
    """The median seconds of a fixed pure-Python loop, ``HOST_LOOP``
    additions, in this process."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for i in range(HOST_LOOP):
            total += i
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def nox_environ(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MATRIX_", "RACEMATRIX_RESULTS",
                                ))}
    env.update(extra)
    return env


def timed(label, command, env, log, cwd=PROJECT):
    log(f"{label}: {' '.join(command)}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        log(f"{label}: exited {done.returncode}: {done.stdout[-600:]}"
            f"{done.stderr[-600:]}")
    return seconds, done


def matrix_command(envdir, nox_args):
    return [sys.executable, "-m", "nox", "-s", "matrix", "--envdir",
            str(envdir), *nox_args]


def where_time_went(raws):
    """The session time of the rows that ran, by suite and verdict (a fixed
    simulator's rows cost more), with how much of it was launch time:
    ``[{"suite", "verdict", "rows", "seconds", "launch_seconds"}]``, the
    costliest first."""
    groups = {}
    for raw in raws:
        if raw.get("verdict") in ("skipped", None):
            continue
        key = (raw.get("suite", "mwe"), raw["verdict"])
        group = groups.setdefault(key, {
            "suite": key[0], "verdict": key[1], "rows": 0, "seconds": 0.0,
            "launch_seconds": 0.0})
        group["rows"] += 1
        group["seconds"] += raw.get("seconds") or 0.0
        group["launch_seconds"] += (raw.get("launch_seconds") or {}).get(
            "seconds") or 0.0
    for group in groups.values():
        group["seconds"] = round(group["seconds"], 1)
        group["launch_seconds"] = round(group["launch_seconds"], 1)
    return sorted(groups.values(), key=lambda g: -g["seconds"])


def matrix_run(label, envdir, results_dir, nox_args, log, **environ):
    """Time ``nox -s matrix`` (the report it writes at the end included)
    and sum up the rows it wrote."""
    command = matrix_command(envdir, nox_args)
    started = now_iso()
    seconds, done = timed(label, command, nox_environ(
        RACEMATRIX_RESULTS=str(results_dir), **environ), log)
    # The rows this run wrote (a warm run starts from the rows before).
    raws = [raw for _, raw in load_raw_dirs([Path(results_dir, "raw")])
            if raw["finished"] >= started]
    ran = [r for r in raws if r["verdict"] != "skipped"]
    launches = [r["launch_seconds"]["n"] for r in ran
                if (r.get("launch_seconds") or {}).get("n") is not None]
    return {"label": label, "command": "nox " + " ".join(command[3:]),
            "environment": {k: v for k, v in environ.items()},
            "seconds": round(seconds, 1), "exit": done.returncode,
            "rows": len(raws), "ran": len(ran),
            "session_seconds": round(sum(r["seconds"] for r in ran), 1),
            "where": where_time_went(ran),
            "mean_pytest_seconds": round(statistics.mean(
                r.get("pytest_seconds", 0.0) for r in ran), 2) if ran else None,
            "launches_per_row": [min(launches), max(launches)]
            if launches else None,
            # The price's verdict of each MWE row, by its race verdict.
            "decisions": launch_decisions(ran)}


def launch_decisions(raws):
    """{race verdict: {launch decision: rows}} of the MWE rows timed."""
    found = {}
    for raw in raws:
        decision = (raw.get("launch_seconds") or {}).get("decision")
        if decision:
            counts = found.setdefault(raw["verdict"], {})
            counts[decision] = counts.get(decision, 0) + 1
    return found


# The launch price's candidates tried (switch interval, device-function
# calls per thread; 32 threads), each at each load (busy processes beside).
# Python's natural 5e-3 s with 1,000 calls (the rows' workload before) is
# left out: 6-10 s a row under load, and one A/B of numba-cuda 0.26.0 ran
# past 7 minutes idle (2026-12-02 00:06-00:14 UTC), its 8 pairs unfinished.
# 1e-6 s x 100 calls read 6 of 6 right idle on 3.10 and nothing under load
# (launch helper's runs, 2026-12-01): left out to keep the part short.
WORKLOAD_CANDIDATES = ((1e-4, 100), (1e-4, 30))
WORKLOAD_LOADS = (0, 2)
WORKLOAD_PYTHONS = ("3.10", "3.11", "3.12")
# Rows with the race timed per Python (beside every row without it).
WORKLOAD_RACY = 3


def workload_envs(envdir, python, raw_dir=PROJECT / "results" / "raw"):
    """(env id, verdict, environment folder) of the committed MWE rows of
    ``python`` whose environment ``envdir`` holds: every row without the
    race and ``WORKLOAD_RACY`` with it, spread over the releases."""
    import re
    found = {"reproduced": [], "not-reproduced": []}
    for _, row in load_raw_dirs(sorted(
            Path(raw_dir).glob(f"py{python}-*-sim1.json"))):
        if row.get("suite", "mwe") != "mwe" or "patch" in row["spec"] or \
                row["verdict"] not in found:
            continue
        name = "env({}, {}, sim1)".format(
            python, " ".join(row["spec"]["requirements"]))
        folder = Path(envdir) / re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        if (folder / "bin" / "python").exists():
            found[row["verdict"]].append((row["env"], row["verdict"], folder))
    racy = found["reproduced"]
    step = max(1, len(racy) // WORKLOAD_RACY)
    return racy[::step][:WORKLOAD_RACY] + found["not-reproduced"]


def workload_run(envdir, log, pythons=WORKLOAD_PYTHONS,
                 candidates=WORKLOAD_CANDIDATES, loads=WORKLOAD_LOADS):
    """Which workload lets a row's own A/B (``launch_time``: the installed
    swap against the unlocked one, in turn) place every committed release:
    each candidate, at each load, run as a matrix row runs it (its pairs
    and rule) in each release's environment. Right: a release without the race reads
    slower, one with it alike."""
    import subprocess
    import sys

    from .measure_launch import WORKLOAD, parse_workload_output
    from .procs import venv_environ
    started = time.perf_counter()
    results = []
    for load in loads:
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(load)]
        try:
            for python in pythons:
                envs = workload_envs(envdir, python)
                for interval, calls in candidates:
                    rows = []
                    for env_id, verdict, folder in envs:
                        clock = time.perf_counter()
                        done = subprocess.run(
                            [str(folder / "bin" / "python"), str(WORKLOAD),
                             "--switch-interval", str(interval),
                             "--device-calls", str(calls)],
                            env=venv_environ(str(folder / "bin"), {
                                "NUMBA_ENABLE_CUDASIM": "1"}),
                            capture_output=True, text=True, timeout=600)
                        record = parse_workload_output(
                            done.stdout.splitlines()) or {}
                        rows.append({
                            "env": env_id, "verdict": verdict,
                            "ratio": record.get("ratio"),
                            "idle_cpus": record.get("idle_cpus"),
                            "decision": record.get("decision", "error"),
                            "seconds": round(time.perf_counter() - clock, 2)})
                    right = [row for row in rows if row["decision"] == (
                        "slower" if row["verdict"] == "not-reproduced"
                        else "alike")]
                    results.append({
                        "python": python, "switch_interval": interval,
                        "device_calls": calls, "load": load, "rows": rows,
                        "right": len(right), "of": len(rows),
                        "seconds_per_row": round(sum(
                            r["seconds"] for r in rows) / max(len(rows), 1),
                            2)})
                    log(f"workload: load {load}, {python}, {interval:g} s, "
                        f"{calls} calls: {len(right)} of {len(rows)} right")
        finally:
            for process in busy:
                process.kill()
                process.wait()
    return {"label": "launch workload: which A/B tells lock from no lock",
            "command": "nox -s bench -- --parts workload",
            "seconds": round(time.perf_counter() - started, 1), "exit": 0,
            "summary": "; ".join(
                f"load {r['load']} {r['python']} {r['switch_interval']:g} s "
                f"x {r['device_calls']}: {r['right']}/{r['of']}"
                for r in results),
            "candidates": results}


# The Python whose MWE rows the `defaults` part runs both ways.
DEFAULTS_PYTHON = "3.12"


def defaults_run(warm, scratch, log):
    """The MWE rows of ``DEFAULTS_PYTHON`` as the project runs them warm
    (uv, reused environments, ``-j auto``), then under nox's defaults
    (virtualenv and pip, one session at a time, environments recreated):
    the defaults' run, with the project's beside it and the ratio."""
    rows = {"MATRIX_PYTHONS": DEFAULTS_PYTHON}  # the default suites: the MWE
    project = warm(f"the project, warm: Python {DEFAULTS_PYTHON}'s MWE rows",
                   scratch / "r10", ["-j", "auto"], **rows)
    defaults = matrix_run(
        "nox's defaults (virtualenv and pip, one at a time, recreated): "
        "the same rows", scratch / "envs-virtualenv", scratch / "r4",
        ["-fb", "virtualenv", "--reuse-venv", "no"], log, **rows)
    defaults["project"] = project
    defaults["times_the_project"] = round(
        defaults["seconds"] / project["seconds"], 1) if project["seconds"] \
        else None
    return defaults


def sim_off_run(envdir, results_dir, log):
    """One simulator-off session on this machine, alone: what a session
    that cannot run here costs (nox's start included)."""
    environ = dict(MATRIX_PYTHONS="3.12", MATRIX_SPECS="numba==0.68.1",
                   MATRIX_SIM="0")
    run = matrix_run("a simulator-off session (no GPU here)", envdir,
                     results_dir, [], log, **environ)
    listed, _ = timed("nox start alone", [sys.executable, "-m", "nox", "-l"],
                      nox_environ(**environ), log)
    run["nox_list_seconds"] = round(listed, 2)
    return run


def time_bisect_run(envdir, out_dir, log, label="bisect on launch time",
                    extra=()):
    """The bisect on launch time, with the project's finished race
    bisects in its scratch bisect folder, as a checkout has them (a
    ``--guess`` of ``extra`` may tell it not to use them)."""
    folder = Path(out_dir, "bisect")
    folder.mkdir(parents=True, exist_ok=True)
    for path in (PROJECT / "results" / "bisect").glob("*.json"):
        if not path.name.endswith(("launch-time.json", ".partial.json")):
            shutil.copy(path, folder / path.name)
    arguments = [*TIME_BISECT, *extra]
    command = [sys.executable, "-m", "nox", "--envdir", str(envdir), "-s",
               "bisect", "--", *arguments]
    seconds, done = timed(label, command, nox_environ(
        RACEMATRIX_RESULTS=str(out_dir)), log)
    found = sorted(folder.glob("*launch-time.json"))
    data = json.loads(found[0].read_text()) if found else {}
    guess = data.get("guess")
    return {"label": label,
            "command": "nox -s bisect -- " + " ".join(arguments),
            "seconds": round(seconds, 1), "exit": done.returncode,
            "summary": data.get("summary", "") + (
                f"; probed first {' and '.join(guess['versions'])}"
                if guess else "; from the middle"),
            "boundary": data.get("boundary"),
            "decisive_probes": data.get("decisive_probes")}


def time_bisect_loaded_run(envdir, scratch, log):
    """The bisect on launch time beside the warm matrix (``nox -s matrix
    -j auto``, its own scratch results), which is stopped (SIGTERM, as a
    CI job's cancellation) once the bisect ends. Records how long the
    matrix ran beside it."""
    command = matrix_command(envdir, ["-j", "auto"])
    log(f"load beside the bisect: {' '.join(command)}")
    load = subprocess.Popen(command, cwd=PROJECT, env=nox_environ(
        RACEMATRIX_RESULTS=str(scratch / "r7-load")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ended = []
    watcher = threading.Thread(target=lambda: ended.append(
        (load.wait(), time.perf_counter())), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        part = time_bisect_run(envdir, scratch / "r7", log,
                               "bisect on launch time, beside the matrix")
    finally:
        if not ended:
            load.terminate()
        watcher.join(timeout=120)
        if watcher.is_alive():
            load.kill()
            watcher.join()
    beside = min(part["seconds"], ended[0][1] - started)
    part["summary"] += (f"; `nox -s matrix -j auto` ran beside it for "
                        f"{beside:.0f} of its {part['seconds']:.0f} s")
    return part


def tests_run(scratch, log):
    """``nox -s tests`` in a fresh clone of the project (its committed
    files, results included; no .nox), or a copy where it is no git
    checkout."""
    copy = Path(scratch) / "project"
    if (PROJECT / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", str(PROJECT), str(copy)],
                       check=True)
    else:
        shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns(
            ".nox", "__pycache__", ".running", ".lock"))
    seconds, done = timed("nox -s tests, fresh clone",
                          [sys.executable, "-m", "nox", "-s", "tests"],
                          nox_environ(), log, cwd=copy)
    tail = (done.stdout + done.stderr).strip().splitlines()
    summary = next((line for line in reversed(tail) if " passed" in line), "")
    failed = [line.split()[1] for line in tail if line.startswith("FAILED ")]
    if failed:  # which ones, not only how many
        summary = f"{summary.strip('= ')}: {', '.join(failed)}"
    return {"label": "nox -s tests, fresh clone", "command": "nox -s tests",
            "seconds": round(seconds, 1), "exit": done.returncode,
            "summary": summary.strip("= ")}


def run(out_dir, log, command, argv=()):
    args = parse_args(list(argv))
    previous = {}
    try:
        previous = json.loads((Path(out_dir) / "bench.json").read_text())
    except (OSError, ValueError):
        pass
    parts = dict(previous.get("parts") or {})
    scratch = Path(tempfile.mkdtemp(prefix="racematrix-bench-"))
    # Warm means the environments this project already has (.nox).
    envs, cache = PROJECT / ".nox", scratch / "uv-cache"

    def warm(label, results, nox_args, **environ):
        if not any(envs.glob("env-*")):  # warm needs environments
            matrix_run("warm-up", envs, scratch / "r0", ["-j", "auto"], log)
        # A rerun: the rows of the run before are there, as the
        # launch-time rule's reference (and the tables the report redraws).
        if (PROJECT / "results" / "raw").is_dir():
            shutil.copytree(PROJECT / "results" / "raw", results / "raw")
        return matrix_run(label, envs, results, nox_args, log, **environ)

    runs = {
        "cold": lambda: matrix_run(
            "cold: empty uv cache, no environment", scratch / "envs",
            scratch / "r1", ["-j", "auto"], log, UV_CACHE_DIR=str(cache)),
        "warm": lambda: warm("warm: the same environments again",
                             scratch / "r2", ["-j", "auto"]),
        "warm-no-launches": lambda: warm(
            "warm, no launch time (MATRIX_LAUNCHES=0)", scratch / "r3",
            ["-j", "auto"], MATRIX_LAUNCHES="0"),
        "warm-serial": lambda: warm("warm, one session at a time (no -j)",
                                    scratch / "r9", []),
        "defaults": lambda: defaults_run(warm, scratch, log),
        "sim-off": lambda: sim_off_run(envs, scratch / "r5", log),
        "workload": lambda: workload_run(envs, log),
        "time-bisect": lambda: time_bisect_run(envs, scratch / "r6", log),
        "time-bisect-loaded": lambda: time_bisect_loaded_run(envs, scratch,
                                                             log),
        "time-bisect-blind": lambda: time_bisect_run(
            envs, scratch / "r8", log, "bisect on launch time, from the "
            "middle", ("--guess", "none")),
        "tests": lambda: tests_run(scratch, log),
    }
    try:
        for name in PARTS:
            if name in args.parts:
                # The load before the part: what else this machine ran;
                # and how fast the host ran then.
                load, loop = os.getloadavg()[0], host_loop_seconds()
                parts[name] = {**runs[name](), "finished": now_iso(),
                               "machine": machine_info(),
                               "load_before": load,
                               "host_loop_before": loop}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    data = {"parts": parts, "command": command, "finished": now_iso()}
    text = render(data)
    write_json_atomic(Path(out_dir) / "bench.json", data)
    write_text_atomic(Path(out_dir) / "bench.md", text)
    print(text)
    return data


def decision_lines(parts):
    """The price's verdicts of each matrix part's MWE rows."""
    lines = []
    for name in PARTS:
        decisions = (parts.get(name) or {}).get("decisions")
        if decisions:
            lines.append(f"- {parts[name]['label']}: " + "; ".join(
                f"{verdict}: " + ", ".join(f"{count} {decision}" for
                                           decision, count in
                                           sorted(counts.items()))
                for verdict, counts in sorted(decisions.items())))
    if not lines:
        return []
    return ["", "The launch-time rule's decision on each MWE row (rows "
                "without the race should read slower, rows with it alike):",
            ""] + lines


def workload_lines(part):
    """The launch A/B's candidates tried, and how each placed the
    committed releases."""
    if not part or not part.get("candidates"):
        return []

    def ratios(c, verdict):
        return ", ".join(f"{r['ratio']:.2f}" for r in c["rows"]
                         if r["verdict"] == verdict and r["ratio"]) or "–"
    rows = [(c["load"], c["python"], f"{c['switch_interval']:g}",
             f"{c['device_calls']:,}", ratios(c, "not-reproduced"),
             ratios(c, "reproduced"), f"{c['right']} of {c['of']}",
             c["seconds_per_row"]) for c in part["candidates"]]
    return ["", "## The launch workload", "",
            "Each release's own A/B (`racematrix/launch_time.py`, its "
            "pairs and rule, 32 threads): the installed swap's median launch over the "
            "unlocked swap's, in turn in one process. Right: a release "
            "without the race (the fix's lock) reads slower, one with it "
            "alike. Load: busy processes beside.", ""] + table(
        ("load", "Python", "switch interval s", "calls per thread",
         "ratio without the race", "ratio with it", "placed right",
         "seconds per row"), rows)


def ratio(parts, top, bottom):
    if top in parts and bottom in parts and parts[bottom]["seconds"]:
        return f"{parts[top]['seconds'] / parts[bottom]['seconds']:.2f}x"
    return "–"


def where_lines(parts):
    """Where the warm matrix's session time went: by suite and verdict,
    with the launch time in it and each group's share."""
    warm = parts.get("warm") or {}
    cores = (warm.get("machine") or {}).get("cores")
    total = warm.get("session_seconds")
    if not warm.get("where") or not cores or not total:
        return []
    rows = [(group["suite"], group["verdict"], group["rows"],
             group["seconds"], group["launch_seconds"] or "–",
             f"{100 * group['seconds'] / total:.0f}%")
            for group in warm["where"]]
    return ["", f"Where the warm matrix's {total} s of session time went. "
                f"Sessions kept its {cores} cores busy ({total / cores:.0f} s "
                f"each in {warm['seconds']} s of wall time), so a group's "
                f"share of the session time is about its share of the wall "
                f"time:", ""] + table(
        ("suite", "verdict", "rows", "session s",
         "of it launch time, s", "share"), rows)


def render(data):
    parts = data["parts"]
    lines = ["# Benchmark: what the project's commands cost here", "",
             f"`{data['command']}`, finished {data['finished']}. Every part "
             "ran against scratch folders; a matrix time includes the report "
             "it writes at the end. *loop*: the seconds of a fixed "
             f"pure-Python loop ({HOST_LOOP:,} additions) just before the "
             "part, how fast the host ran then: a host that slows the whole "
             "machine moves every figure with it, and parts timed at "
             "different loops do not compare.", ""]
    rows = []
    for name in PARTS:
        part = parts.get(name)
        if not part:
            continue
        machine = part.get("machine", {})
        detail = part.get("summary") or (
            f"{part.get('ran')} of {part.get('rows')} rows ran; "
            f"{part.get('session_seconds')} s of session time; launches per "
            f"row {part.get('launches_per_row') or '–'}"
            if "rows" in part else "")
        if part.get("nox_list_seconds") is not None:
            detail += f"; `nox -l` alone {part['nox_list_seconds']} s"
        rows.append((part["label"], f"`{part['command']}`", part["seconds"],
                     part["exit"], detail,
                     f"{machine.get('cores', '?')} cores, " + (
                         f"load {part['load_before']:.1f} before"
                         if "load_before" in part else
                         f"load {part.get('load_average', 0):.1f} after")
                     + (f", loop {part['host_loop_before']:.2f} s"
                        if "host_loop_before" in part else ""),
                     part.get("finished", "")))
    lines += table(("part", "command", "wall s", "exit", "what it did",
                    "machine", "finished"), rows)
    lines += ["", f"Launch-time evidence costs warm "
                  f"{ratio(parts, 'warm', 'warm-no-launches')} the matrix "
                  f"without it."]
    defaults = parts.get("defaults") or {}
    if defaults.get("project"):
        project = defaults["project"]
        lines += ["", f"{defaults['ran']} MWE rows of Python "
                      f"{DEFAULTS_PYTHON}: the project warm "
                      f"({project['command']}) {project['seconds']} s, "
                      f"nox's defaults ({defaults['command']}) "
                      f"{defaults['seconds']} s: "
                      f"{defaults['times_the_project']}x."]
    lines += where_lines(parts)
    lines += decision_lines(parts)
    lines += workload_lines(parts.get("workload"))
    serial = parts.get("warm-serial")
    if serial and serial.get("machine", {}).get("cores"):
        cores = serial["machine"]["cores"]
        lines += ["", f"One session at a time, the warm matrix took "
                      f"{serial['seconds']} s: on {cores} cores no "
                      f"scheduling brings it under {serial['seconds'] / cores:.0f}"
                      f" s, since a session runs no faster beside another "
                      f"than alone."]
    return "\n".join(lines) + "\n"
