"""Issue 18's fault cases, run as a user would against a copy of the real
``results/`` of a fresh clone: one table row per case with the command, its
exit status, the line the user sees, whether ``md5sum results/raw/*.json
results/*.md results/*.json`` is equal before and after, and whether every
measured row kept its figures.

    python3 tests/faults/run_cases.py [--only CASE ...] [--out FILE]
                                      [--bisect-resume]

Needs nox and uv for ``python3`` and the package index; the matrix cases
build a real environment (numba from the index), the bisect measurement
several. Nothing here knows a result: it reports what the tool did.
"""
import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
PROJECT = HERE.parents[2]
UNREACHABLE = "http://127.0.0.1:9/simple"
MATRIX_ONE = {"MATRIX_PYTHONS": "3.11", "MATRIX_SPECS": "numba==0.60.0",
              "MATRIX_SIM": "1", "MATRIX_SUITES": "mwe"}
FIGURES = ("runs", "failures", "other_errors", "hangs", "verdict", "reason",
           "packages", "launch_seconds", "finished")
DEAD_PID = 999_999  # above the usual pid_max: never a live process


def results_digest(results):
    """One digest of ``md5sum raw/*.json *.md *.json`` in ``results``."""
    files = sorted([*results.glob("raw/*.json"), *results.glob("*.md"),
                    *results.glob("*.json")])
    lines = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}"
             for p in files]
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def figures(results):
    """Every raw row's measured figures, by file."""
    found = {}
    for path in sorted(results.glob("raw/*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("runs"):
            found[path.name] = {key: data.get(key) for key in FIGURES}
    return found


def descendants(pid):
    """Processes whose parent chain reaches ``pid`` (read from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items()
                    if parent in frontier} - found
        found |= frontier
    return found


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(
            b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_pytest_when_running(process, after=1.0):
    """SIGKILL the pytest child of ``process`` (ours) once it has run for
    ``after`` seconds: a child killed by a signal, as the OOM killer does."""
    seen_at = None
    while process.poll() is None:
        pytest = [pid for pid in descendants(process.pid)
                  if "-m pytest" in cmdline(pid) and "--junitxml" in
                  cmdline(pid)]
        if pytest:
            seen_at = seen_at or time.monotonic()
            if time.monotonic() - seen_at >= after:
                for pid in pytest:
                    os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.5)


def write_broken_raw(clone):
    (clone / "results" / "raw" / "zz-broken.json").write_text("{not json")


def write_stale(clone):
    Path(tempfile.gettempdir(), f"racematrix-scratch-{DEAD_PID}-x").mkdir(
        exist_ok=True)


def stale_left(clone):
    return [p.name for p in Path(tempfile.gettempdir()).glob(
        f"racematrix-scratch-{DEAD_PID}-*")]


def split_raw(clone):
    raw = sorted((clone / "results" / "raw").glob("*.json"))
    for name, part in (("A", raw[::2]), ("B", raw[1::2])):
        folder = clone / "gathered" / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in part:
            shutil.copy(path, folder / path.name)


def regular_file(clone):
    (clone / "not-a-folder").write_text("")


# name, argv after `python3 -m nox`, environment, setup, action while it
# runs, the words that mark the line the user sees
CASES = [
    ("index unreachable (matrix)", ["-s", "matrix"],
     {**MATRIX_ONE, "UV_DEFAULT_INDEX": UNREACHABLE,
      "UV_INDEX_URL": UNREACHABLE, "PIP_INDEX_URL": UNREACHABLE},
     None, None, ("aborted:", "failed:")),
    ("pytest killed by SIGKILL (matrix)", ["-s", "matrix"], MATRIX_ONE,
     None, kill_pytest_when_running, ("aborted:", "failed:")),
    ("user option -p no:junitxml (matrix)",
     ["-s", "matrix", "--", "-p", "no:junitxml"], MATRIX_ONE, None, None,
     ("aborted:", "failed:")),
    ("user option --junitxml (matrix)",
     ["-s", "matrix", "--", "--junitxml=mine.xml"], MATRIX_ONE, None, None,
     ("aborted:", "failed:")),
    ("user option --co: runs, reports nothing (matrix)",
     ["-s", "matrix", "--", "--co"], MATRIX_ONE, None, None,
     ("aborted:", "failed:", "skipped:")),
    ("RACEMATRIX_RESULTS a regular file (matrix)", ["-s", "matrix"],
     {**MATRIX_ONE, "RACEMATRIX_RESULTS": "not-a-folder"}, regular_file,
     None, ("nox:", "aborted:")),
    ("RACEMATRIX_RESULTS a regular file (report)", ["-s", "report"],
     {"RACEMATRIX_RESULTS": "not-a-folder"}, regular_file, None, ("nox:",)),
    ("RACEMATRIX_RESULTS under a regular file (bisect)",
     ["-s", "bisect", "--", "--package", "numba", "--python", "3.11"],
     {"RACEMATRIX_RESULTS": "not-a-folder/results"}, regular_file, None,
     ("nox:",)),
    ("report --raw A --raw B", ["-s", "report", "--", "--raw",
                                "gathered/A", "--raw", "gathered/B"],
     {}, split_raw, None, ("report:",)),
    ("report --out twice", ["-s", "report", "--", "--out", "x", "--out",
                            "y"], {}, None, None, ("report:",)),
    ("bisect --python twice", ["-s", "bisect", "--", "--package", "numba",
                               "--python", "3.11", "--python", "3.10"],
     {}, None, None, ("aborted:", "failed:")),
    ("bisect --package Numba_CUDA (not canonical)",
     ["-s", "bisect", "--", "--package", "Numba_CUDA", "--python", "3.11",
      "--from", "9.9.9"], {}, None, None, ("aborted:", "failed:")),
    ("malformed raw file (report)", ["-s", "report"], {}, write_broken_raw,
     None, ("warning:",)),
    ("stale scratch folder after kill -9 (matrix)",
     ["-s", "matrix", "--", "-p", "no:junitxml"], MATRIX_ONE, write_stale,
     None, ("cleared",)),
]


def user_line(output, marks):
    # nox's own consequence of a failed environment ("Prerequisite session
    # ... was not successful") names no reason: the line before it does.
    lines = [line.strip() for line in output.splitlines() if line.strip()
             and "Prerequisite session" not in line]
    for mark in marks:
        hit = [line for line in lines if mark in line]
        if hit:
            return hit[-1]
    return lines[-1] if lines else ""


def nox_env(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MATRIX_", "RACEMATRIX_"))}
    env.update(extra)
    return env


def fresh_clone(work):
    clone = work / "clone"
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)],
                       check=True)
    pristine = work / "results-pristine"
    if not pristine.exists():
        # The real results as this code renders them (nox's own
        # environment for the noxfile is made on the way): a case's
        # difference is then the case's alone.
        subprocess.run([sys.executable, "-m", "nox", "-s", "report"],
                       cwd=clone, env=nox_env({}), capture_output=True,
                       timeout=900)
        shutil.copytree(clone / "results", pristine)
    return clone, pristine


def reset_results(clone, pristine):
    shutil.rmtree(clone / "results", ignore_errors=True)
    shutil.copytree(pristine, clone / "results")
    for leftover in ("not-a-folder", "gathered", "x", "y"):
        target = clone / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def run_case(clone, pristine, case, log):
    name, argv, env, setup, during, marks = case
    reset_results(clone, pristine)
    if setup:
        setup(clone)
    results = clone / "results"
    before, kept_before = results_digest(results), figures(results)
    command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                        "nox", *map(shlex.quote, argv)])
    log(f"case: {name}: {command}")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "nox", *argv],
                               cwd=clone, env=nox_env(env),
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    if during:
        import threading
        threading.Thread(target=during, args=(process,), daemon=True).start()
    for line in process.stdout:
        output.append(line)
    process.wait()
    text = "".join(output)
    (clone.parent / "logs").mkdir(exist_ok=True)
    (clone.parent / "logs" / f"{len(os.listdir(clone.parent / 'logs')):02d}"
     ".log").write_text(f"$ {command}\n{text}")
    kept_after = figures(results)
    line = user_line(text, marks)
    if "stale" in name:
        line += f" [left: {', '.join(stale_left(clone)) or 'nothing'}]"
    row = {"case": name, "command": command, "exit": process.returncode,
           "line": line, "md5_equal": results_digest(results) == before,
           "figures_kept": all(kept_after.get(k) == v
                               for k, v in kept_before.items()),
           "seconds": round(time.monotonic() - started, 1)}
    log(f"  -> exit {row['exit']}, {row['line']!r}, md5 equal "
        f"{row['md5_equal']}, figures kept {row['figures_kept']}")
    return row


def bisect_resume(clone, pristine, log, probes_before=2,
                  argv=("--package", "numba", "--python", "3.11", "--from",
                        "0.60.0", "--to", "0.62.1"), reference=False):
    """The bisect interrupted with SIGTERM after ``probes_before`` saved
    probes, then run again: probes before, probes reused, boundary, wall
    time of both halves."""
    reset_results(clone, pristine)
    command = ["-s", "bisect", "--", *argv]
    stem = f"{argv[1].lower()}-py{argv[3]}-{argv[5]}-{argv[7]}"
    partial = clone / "results" / "bisect" / f"{stem}.partial.json"
    log(f"bisect, first half: nox {' '.join(command)}")
    started = time.monotonic()
    first = subprocess.Popen([sys.executable, "-m", "nox", *command],
                             cwd=clone, env=nox_env({}),
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    saved = 0
    import threading
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(first.stdout),
                              daemon=True)
    reader.start()
    while first.poll() is None:
        try:
            saved = len(json.loads(partial.read_text())["tested"])
        except (OSError, ValueError, KeyError):
            saved = 0
        if saved >= probes_before:
            first.send_signal(signal.SIGTERM)
            break
        time.sleep(1)
    first.wait()
    reader.join(timeout=10)
    first_seconds = round(time.monotonic() - started, 1)
    (clone.parent / "logs").mkdir(exist_ok=True)
    (clone.parent / "logs" / "bisect-first.log").write_text("".join(lines))
    log(f"  interrupted after {saved} saved probes, {first_seconds} s, exit "
        f"{first.returncode}")
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "nox", *command],
                            cwd=clone, env=nox_env({}), capture_output=True,
                            text=True)
    second_seconds = round(time.monotonic() - started, 1)
    (clone.parent / "logs" / "bisect-second.log").write_text(
        second.stdout + second.stderr)
    final = json.loads((clone / "results" / "bisect" /
                        f"{stem}.json").read_text())
    resumed = final.get("resumed") or {}
    said = user_line(second.stdout + second.stderr, ("resuming",))
    figures_ = {}
    if reference:
        # The same search uninterrupted, its environments now warm.
        for path in (clone / "results" / "bisect").glob(f"{stem}.*"):
            path.unlink()
        started = time.monotonic()
        whole = subprocess.run([sys.executable, "-m", "nox", *command],
                               cwd=clone, env=nox_env({}),
                               capture_output=True, text=True)
        figures_ = {"uninterrupted_exit": whole.returncode,
                    "uninterrupted_seconds": round(time.monotonic() -
                                                   started, 1),
                    "uninterrupted_boundary": json.loads(
                        (clone / "results" / "bisect" / f"{stem}.json")
                        .read_text()).get("boundary")}
    return {**figures_, "command": "nox " + shlex.join(command),
            "probes_before_interrupt": saved,
            "first_exit": first.returncode, "first_seconds": first_seconds,
            "probes_reused": resumed.get("probes_reused", 0),
            "reused_versions": resumed.get("versions", []),
            "log_line": said, "second_exit": second.returncode,
            "second_seconds": second_seconds,
            "boundary": final.get("boundary"), "summary": final["summary"],
            "decisive_probes": final["decisive_probes"],
            "partial_left": partial.exists()}


def table(rows):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| case | command | exit | the line the user sees | md5 equal "
             "before and after | measured figures kept | s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in (
            row["case"], f"`{row['command']}`", row["exit"], row["line"],
            "yes" if row["md5_equal"] else "no",
            "yes" if row["figures_kept"] else "no", row["seconds"])) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", action="extend", default=[],
                        help="cases whose name contains any of these words")
    parser.add_argument("--work", default=None,
                        help="folder for the clone (default: a new one)")
    parser.add_argument("--out", default=None, help="write the table here")
    parser.add_argument("--bisect-resume", action="store_true",
                        help="also measure an interrupted, resumed bisect")
    parser.add_argument("--bisect-args", default=None,
                        help="the bisect's arguments as one string, in the "
                             "order --package P --python X.Y --from A --to B")
    parser.add_argument("--interrupt-after", type=int, default=2,
                        help="saved probes before the bisect is sent SIGTERM")
    parser.add_argument("--bisect-reference", action="store_true",
                        help="also time the same bisect uninterrupted")
    parser.add_argument("--no-cases", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="racematrix-faults-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, file=sys.stderr, flush=True)
    clone, pristine = fresh_clone(work)
    rows = []
    if not args.no_cases:
        for case in CASES:
            if args.only and not any(w in case[0] for w in args.only):
                continue
            rows.append(run_case(clone, pristine, case, log))
    text = [f"Fault cases against a copy of `results/` of a fresh clone "
            f"({subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=clone, capture_output=True, text=True).stdout.strip()}), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    if rows:
        text += [table(rows), ""]
    if args.bisect_resume:
        figures_ = bisect_resume(
            clone, pristine, log, reference=args.bisect_reference,
            probes_before=args.interrupt_after,
            **({"argv": tuple(shlex.split(args.bisect_args))}
               if args.bisect_args else {}))
        text += ["Interrupted, then resumed bisect:", "", "```",
                 json.dumps(figures_, indent=2), "```", ""]
    output = "\n".join(text)
    print(output)
    if args.out:
        Path(args.out).write_text(output)


if __name__ == "__main__":
    main()
