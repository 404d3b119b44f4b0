"""Installing a release into an environment: the companion ladder
(``companions``, through uv) with this project's smoke launch and test
tools; a failure is classified as a skip, the user's bad input, or an
environment error."""
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path


from .companions import Installation, Ladder
from .index import (IndexLookupError, list_releases, nearest_versions,
                    unreachable_index)
from .procs import venv_environ
from .provenance import now_iso
from .suites import MWE_SUITE, RUNNER_TOOLS
from .venv import read_environment, venv_python


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
    if shutil.which("uv") is None:  # the ladder's dates need uv's
        return Installation(problem=("bad-input", "uv is not on PATH: the "
                                     "install ladder needs it (`pip install "
                                     "uv`)"))
    suite = suite or MWE_SUITE
    # A suite's own smoke code replaces our launch; the code under test
    # must still come from numba-cuda where the spec names it.
    provider = spec.target if suite.smoke is None or \
        spec.target == "numba-cuda" else None
    tools = tuple(dict.fromkeys([*RUNNER_TOOLS, *suite.requirements]))
    smoke = suite_smoke(suite.smoke) if suite.smoke else SMOKE_LAUNCH
    key = install_key(spec, tools, smoke, provider)
    if not every_way:
        kept = installed_before(session, key)
        if kept:
            (log or session.log)(
                f"install {' '.join(spec.requirements)}: the environment is "
                f"as installed on {kept.installed_at} ({kept.way}); reused")
            return kept
    ladder = Ladder(venv_python(session), tools=tools,
                    classify=lambda output: classify_install_failure(output, spec),
                    smoke=smoke, module=MODULE_UNDER_TEST,
                    provider=provider,
                    sim_environ=venv_environ(session.bin,
                                             {"NUMBA_ENABLE_CUDASIM": "1"}),
                    log=log or session.log, timeout=timeout)
    installation = ladder.install(spec.requirements, every_way=every_way)
    if installation.problem is None and not every_way:
        note_installed(session, key, installation)
    return installation


# Written into an environment once the ladder has installed it.
INSTALLED = "racematrix-installed.json"


def install_key(spec, tools, smoke, provider):
    """What an installation depends on: the same key, the same ladder."""
    text = json.dumps([spec.python, list(spec.requirements), list(tools),
                       smoke, provider, MODULE_UNDER_TEST])
    return hashlib.sha256(text.encode()).hexdigest()


def note_installed(session, key, installation):
    record = {"key": key, "installed_at": now_iso(),
              "resolution": installation.resolution(),
              "packages": dict(installation.packages)}
    (Path(session.bin).parent / INSTALLED).write_text(json.dumps(record))


def installed_before(session, key):
    """The installation an earlier run of the ladder made in this
    environment (a warm run: nox reuses environments), when it was made for
    the same spec, tools and smoke code and every package it pinned is
    still there at its version; else None. Its ``resolution()`` says it was
    reused, and when it was installed."""
    try:
        record = json.loads((Path(session.bin).parent / INSTALLED).read_text())
        environment = read_environment(session)
        present = environment["packages"]
    except (OSError, ValueError, RuntimeError):
        return None
    if record.get("key") != key or any(
            present.get(name) != version
            for name, version in record.get("packages", {}).items()):
        return None
    resolution = record["resolution"]
    return ReusedInstallation(
        None, resolution["way"], resolution["exclude_newer"],
        resolution["requirements"], [], resolution["implementation"],
        record["packages"], installed_at=record["installed_at"],
        earlier_attempts=resolution["attempts"],
        environment=environment)


@dataclass
class ReusedInstallation(Installation):
    installed_at: str = ""
    earlier_attempts: list = field(default_factory=list)
    # What read_environment found when checking it (read once).
    environment: dict | None = None

    def resolution(self):
        return {**super().resolution(), "attempts": self.earlier_attempts,
                "reused": True, "installed_at": self.installed_at}


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
    missing = re.search(r"there is no version of ([\w.-]+)==([\w.]+)", output)
    if missing:
        return "bad-input", unknown_version_message(missing.group(1),
                                                    missing.group(2))
    unknown = re.search(r"([\w.-]+) was not found in the package registry",
                        output)
    if unknown:
        return "bad-input", (f"{unknown.group(1)} is not on the package "
                             f"index; check the name in the spec")
    unreachable = unreachable_index(output)
    if unreachable:
        return "error", unreachable
    return "error", f"install failed: {install_cause(output)}"


def install_cause(output):
    """The installer's error chain (uv prints ``error:`` and then one
    ``cause:`` line per link, ~350 characters) as one line: the error and
    its last cause. The whole chain goes into the attempt's record."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next((line for line in lines
                  if re.match(r"(error|ERROR):", line)), None)
    causes = [line for line in lines if line.startswith("cause:")]
    if error is None:
        return (lines[-1] if lines else "no output")[:200]
    text = error.split(":", 1)[1].strip()
    if causes:
        text += f" ({causes[-1].removeprefix('cause:').strip()})"
    return text[:200]


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
