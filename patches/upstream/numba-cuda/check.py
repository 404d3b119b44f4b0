#!/usr/bin/env python3
"""Check the patch series in this folder against numba-cuda's repository.

    python3 patches/upstream/numba-cuda/check.py --source PATH_OR_URL

1. Clones --source (a numba-cuda git repository: a local clone, a bare
   mirror or https://github.com/NVIDIA/numba-cuda) into --workdir and checks
   out --commit (default: the one in README.md).
2. Checks each patch with ``git apply --check`` on the commit with the
   patches before it applied, then takes the series with ``git am``.
3. Makes a virtual environment (uv) with numba-cuda installed in editable
   mode from the checkout (its C extensions are built there) and the
   ``test`` dependency group of its pyproject.toml.
4. Runs numba-cuda's simulator suite (their pixi task ``simtest``: pytest in
   ``testing/`` with NUMBA_ENABLE_CUDASIM=1) on the commit ("before") and
   on the series ("after"), and compares the outcomes test by test.
5. Runs the simulator package ``numba.cuda.tests.cudasim`` (where the new
   tests are) on: the commit with the series' tests and with #690 (the
   current fix, d41b90d3) reverted; the commit with the series' tests; the
   whole series.
6. Reruns each test whose outcome differs between before and after
   --reruns times on both trees, to tell a flaky test from a changed one.

Writes check.json (every outcome) and check.md (the summary) to --out.
Exit status 0 when every patch applies, every pre-existing test has the same
outcome before and after (or varies on both trees in the reruns), and each
new test fails where the race is and passes after the series.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIX_690 = "d41b90d3aa601ffb041789caae7fc3da0223f5b7"
CUDASIM_TESTS = "numba.cuda.tests.cudasim"
# The trees the new tests run on, besides the commit and the whole series
REVERTED = "tests, #690 reverted"
TESTS = "tests"
# The race's signature, as the simulator words it.
RACE = re.compile(
    r"tid=\[[\d, ]+\] ctaid=\[[\d, ]+\]: module '[\w.]*cuda' has no "
    r"attribute '\w+'"
)


def recorded_commit():
    text = (HERE / "README.md").read_text()
    match = re.search(r"^Commit: `([0-9a-f]{40})`", text, re.MULTILINE)
    if match is None:
        sys.exit("README.md names no commit (a line 'Commit: `<sha>`')")
    return match.group(1)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source",
        required=True,
        help="numba-cuda git repository to clone (path or URL)",
    )
    parser.add_argument(
        "--commit", default=None, help="commit to check (default: README's)"
    )
    parser.add_argument(
        "--python",
        default=shutil.which("python3.12") or sys.executable,
        help="interpreter for the virtual environment (default: python3.12)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/numba-cuda-check"),
        help="where the clone and the environment go (emptied first)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "check",
        help="where check.json and check.md go (default: ./check)",
    )
    parser.add_argument(
        "--jobs",
        default="0",
        help="pytest-xdist workers for the suite (default 0: none)",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=3,
        help="reruns of each test whose outcome differs (default 3)",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="one more requirement for the environment, e.g. 'numpy<2.5'; repeatable",
    )
    parser.add_argument(
        "--no-suite",
        action="store_true",
        help="skip steps 4 and 6 (the full suite, minutes)",
    )
    args = parser.parse_args()
    if args.commit is None:
        args.commit = recorded_commit()
    if not re.fullmatch(r"[0-9a-f]{7,40}", args.commit):
        parser.error(f"--commit must be a hexadecimal commit id: {args.commit}")
    if not Path(args.python).exists() and shutil.which(args.python) is None:
        parser.error(f"--python {args.python}: no such interpreter")
    return args


class Checkout:
    """The clone, its environment, and the logs of every command."""

    def __init__(self, args):
        self.args = args
        self.root = args.workdir / "numba-cuda"
        self.venv = args.workdir / "venv"
        self.logs = args.workdir / "logs"
        self.python = self.venv / "bin" / "python"
        self._n = 0

    def run(self, cmd, cwd=None, env=None, check=True, name="cmd"):
        self._n += 1
        log = self.logs / f"{self._n:02d}-{name}.log"
        full_env = dict(os.environ, **(env or {}))
        with open(log, "w") as f:
            f.write("$ " + " ".join(map(str, cmd)) + "\n")
            f.flush()
            proc = subprocess.run(
                [str(c) for c in cmd],
                cwd=cwd or self.root,
                env=full_env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        if check and proc.returncode != 0:
            tail = log.read_text()[-3000:]
            sys.exit(
                f"failed ({proc.returncode}): {' '.join(map(str, cmd))}"
                f"\n--- {log} (tail)\n{tail}"
            )
        return proc.returncode

    def git(self, *cmd, check=True, name="git"):
        return self.run(
            ["git", "-c", "user.name=check", "-c", "user.email=check@localhost", *cmd],
            check=check,
            name=name,
        )

    def rev(self, ref):
        return subprocess.check_output(
            ["git", "rev-parse", ref], cwd=self.root, text=True
        ).strip()

    def checkout(self, ref):
        # Build outputs (the C extensions) are ignored files and stay.
        self.git("checkout", "-q", "--detach", ref, name="checkout")
        self.git("reset", "-q", "--hard", name="reset")

    def pytest(self, junit, targets=(), extra=(), name="pytest"):
        """numba-cuda's simtest task: pytest in testing/ (their pytest.ini)."""
        testing = self.root / "testing"
        cmd = [
            self.python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={junit}",
            *extra,
            *targets,
        ]
        env = {"NUMBA_ENABLE_CUDASIM": "1", "NUMBA_CUDA_TEST_BIN_DIR": str(testing)}
        self.run(cmd, cwd=testing, env=env, check=False, name=name)
        return outcomes(junit)


def outcomes(junit):
    """Test id -> passed / failed / error / skipped / xfailed, with the race
    signature marked ("failed (race)")."""
    result = {}
    if not Path(junit).exists():
        return result
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name")
        test_id = case.get("classname") + "::" + name if case.get("classname") else name
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                text = (child.get("message") or "") + (child.text or "")
                outcome = "failed" if child.tag == "failure" else "error"
                if RACE.search(text):
                    outcome += " (race)"
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome = "xfailed" if xfail else "skipped"
        result[test_id] = outcome
    return result


def counts(result):
    tally = {}
    for outcome in result.values():
        key = outcome.split(" ")[0]
        tally[key] = tally.get(key, 0) + 1
    return dict(sorted(tally.items()))


def pytest_target(test_id):
    """A pytest target and -k expression for a junit test id."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    # module path is the dotted prefix without the class (CamelCase)
    while parts and parts[-1][:1].isupper():
        parts.pop()
    cls = classname.split(".")[len(parts) :]
    target = "numba.cuda.tests." + ".".join(parts)
    return target, " and ".join([*cls, name])


def rerun_outcome(result, test_id):
    """The outcome of test_id in a rerun of its module alone, where pytest
    names the test relative to another directory (".TestPrint::test_dim3"
    for "cudapy.test_print.TestPrint::test_dim3")."""
    classname, _, name = test_id.partition("::")
    suffix = classname.rsplit(".", 1)[-1] + "::" + name
    found = [v for k, v in result.items() if k.rsplit(".", 1)[-1] == suffix]
    return found[0] if len(found) == 1 else "absent"


def environment(co):
    args = co.args
    co.run(
        ["uv", "venv", "-q", co.venv, "--python", args.python],
        cwd=args.workdir,
        name="venv",
    )
    group = tomllib_group(co.root / "pyproject.toml", "test")
    reqs = ["-e", co.root, *group, *args.extra]
    co.run(
        ["uv", "pip", "install", "--python", co.python, *reqs],
        cwd=args.workdir,
        name="install",
    )
    versions = subprocess.check_output(
        ["uv", "pip", "freeze", "--python", co.python], text=True
    ).split()
    return versions


def tomllib_group(pyproject, group):
    """The plain requirements of a dependency group (no include-group)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        sys.exit("run check.py with Python 3.11 or newer (tomllib)")
    data = tomllib.loads(Path(pyproject).read_text())
    reqs = data["dependency-groups"][group]
    # pre-commit is for style checks, not for running the tests
    return [r for r in reqs if isinstance(r, str) and r != "pre-commit"]


def main():
    args = parse_args()
    patches = sorted(HERE.glob("0*.patch"))
    if len(patches) < 2:
        sys.exit(f"no patch series in {HERE}")
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    co = Checkout(args)
    co.logs.mkdir()
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "load": os.getloadavg(),
        },
        "source": args.source,
        "patches": [p.name for p in patches],
    }

    # 1-2: the clone, the patches
    co.run(["git", "clone", "-q", args.source, co.root], cwd=args.workdir, name="clone")
    co.checkout(args.commit)
    base = co.rev("HEAD")
    report["commit"] = base
    applied = []
    for patch in patches:
        ok = co.git("apply", "--check", patch, check=False, name="apply-check") == 0
        applied.append({"patch": patch.name, "apply_check": ok})
        if not ok:
            report["applied"] = applied
            write(args.out, report)
            sys.exit(f"{patch.name}: git apply --check fails")
        co.git("am", "-q", patch, name="am")
    report["applied"] = applied
    after = co.rev("HEAD")
    # The series without its last patch (the fix): the tests alone
    tests_only = co.rev("HEAD~1")

    # 3: the environment
    co.checkout(base)
    report["environment"] = environment(co)
    report["python"] = subprocess.check_output(
        [co.python, "-c", "import sys; print(sys.version)"], text=True
    ).strip()

    # 5: the new tests, where the race is, with the current fix, and after
    trees = {}
    co.checkout(base)
    trees["commit"] = co.pytest(
        args.workdir / "cudasim-commit.xml", [CUDASIM_TESTS], name="cudasim-commit"
    )
    co.checkout(tests_only)
    co.git("revert", "--no-commit", FIX_690, name="revert-690")
    trees[REVERTED] = co.pytest(
        args.workdir / "cudasim-reverted.xml", [CUDASIM_TESTS], name="cudasim-reverted"
    )
    co.checkout(tests_only)
    trees[TESTS] = co.pytest(
        args.workdir / "cudasim-tests.xml", [CUDASIM_TESTS], name="cudasim-tests"
    )
    co.checkout(after)
    trees["series"] = co.pytest(
        args.workdir / "cudasim-series.xml", [CUDASIM_TESTS], name="cudasim-series"
    )
    new_ids = sorted(set(trees["series"]) - set(trees["commit"]))
    report["cudasim"] = trees
    report["new_tests"] = {
        t: {tree: trees[tree].get(t, "absent") for tree in trees} for t in new_ids
    }

    # Every new test passes after the series; those that exist before the
    # fix pass with #690 too; and at least one fails with the race's
    # signature where #690 is reverted.
    seen = report["new_tests"].values()
    ok = (
        bool(new_ids)
        and all(s["series"] == "passed" for s in seen)
        and all(s[TESTS] in ("passed", "absent") for s in seen)
        and any(s[REVERTED].endswith("(race)") for s in seen)
    )

    # 4 and 6: the whole simulator suite, before and after
    if not args.no_suite:
        jobs = ["-n", args.jobs]
        co.checkout(base)
        before_all = co.pytest(
            args.workdir / "before.xml", extra=jobs, name="suite-before"
        )
        co.checkout(after)
        after_all = co.pytest(
            args.workdir / "after.xml", extra=jobs, name="suite-after"
        )
        common = sorted(set(before_all) & set(after_all))
        differ = [t for t in common if before_all[t] != after_all[t]]
        reruns = {}
        for t in differ:
            target, expr = pytest_target(t)
            seen = {"before": [], "after": []}
            for label, ref in (("before", base), ("after", after)):
                co.checkout(ref)
                for i in range(args.reruns):
                    junit = args.workdir / f"rerun-{label}-{i}.xml"
                    got = co.pytest(junit, [target], extra=["-k", expr], name="rerun")
                    seen[label].append(rerun_outcome(got, t))
            reruns[t] = seen
        # Changed: one outcome on every run of each tree. Flaky: more than
        # one on a tree. A rerun that did not report the test decides
        # nothing and counts as changed.
        changed = [
            t
            for t in differ
            if "absent" in reruns[t]["before"] + reruns[t]["after"]
            or (
                len(set(reruns[t]["before"] + [before_all[t]])) == 1
                and len(set(reruns[t]["after"] + [after_all[t]])) == 1
            )
        ]
        report["suite"] = {
            "before": {"counts": counts(before_all), "outcomes": before_all},
            "after": {"counts": counts(after_all), "outcomes": after_all},
            "only_before": sorted(set(before_all) - set(after_all)),
            "only_after": sorted(set(after_all) - set(before_all)),
            "differ": {t: [before_all[t], after_all[t]] for t in differ},
            "reruns": reruns,
            "changed": changed,
        }
        if changed or report["suite"]["only_before"]:
            ok = False
    report["ok"] = ok
    write(args.out, report)
    print((args.out / "check.md").read_text())
    return 0 if ok else 1


def write(out, report):
    out.mkdir(parents=True, exist_ok=True)
    (out / "check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "check.md").write_text(summary(report))


def summary(r):
    lines = [
        "# The series on numba-cuda's repository",
        "",
        f"- date: {r['date']}; machine: {r['machine']['platform']}, "
        f"{r['machine']['cores']} cores, load at start "
        f"{', '.join(f'{x:.1f}' for x in r['machine']['load'])}",
        f"- command: `{r['command']}`",
        f"- commit: `{r.get('commit', '?')}` of {r['source']}",
        f"- Python: {r.get('python', '?')}",
        "",
        "| patch | `git apply --check` (on the commit + the patches before) |",
        "|---|---|",
    ]
    for a in r.get("applied", []):
        lines.append(f"| {a['patch']} | {'clean' if a['apply_check'] else 'FAILS'} |")
    if "new_tests" in r:
        trees = (
            list(next(iter(r["new_tests"].values())).keys()) if r["new_tests"] else []
        )
        lines += [
            "",
            "New tests (`numba.cuda.tests.cudasim`, outcome per tree):",
            "",
            "| test | " + " | ".join(trees) + " |",
            "|---|" + "---|" * len(trees),
        ]
        for t, seen in r["new_tests"].items():
            lines.append(f"| `{t}` | " + " | ".join(seen[x] for x in trees) + " |")
    if "suite" in r:
        s = r["suite"]
        lines += [
            "",
            "numba-cuda's simulator suite (`testing/`, NUMBA_ENABLE_CUDASIM=1):",
            "",
            "| tree | "
            + " | ".join(sorted(set(s["before"]["counts"]) | set(s["after"]["counts"])))
            + " |",
        ]
        keys = sorted(set(s["before"]["counts"]) | set(s["after"]["counts"]))
        lines.append("|---|" + "---|" * len(keys))
        for label in ("before", "after"):
            lines.append(
                f"| {label} | "
                + " | ".join(str(s[label]["counts"].get(k, 0)) for k in keys)
                + " |"
            )
        lines += [
            "",
            f"Tests only before: {len(s['only_before'])}; only after "
            f"(the new ones): {len(s['only_after'])}.",
            f"Pre-existing tests with another outcome after: "
            f"{len(s['differ'])}; of them changed (the same outcome on "
            f"every run of each tree): {len(s['changed'])}.",
        ]
        for t, (b, a) in s["differ"].items():
            rr = s["reruns"].get(t, {})
            lines.append(
                f"- `{t}`: {b} -> {a}; reruns before "
                f"{rr.get('before')}, after {rr.get('after')}"
            )
    lines += ["", f"Verdict: {'ok' if r.get('ok') else 'NOT ok'}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
