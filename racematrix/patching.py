"""Applying a patch (``racematrix.patches``) to an installed environment,
after install and before any test, with GNU patch.

uv installs by hard-linking files from its cache: a file edited in place
would change the cache and every environment that shares it, patched or
not. So each file the diff changes is first replaced by a copy of its own
(a new file renamed over the link), and only that copy is patched; the
cache and every other environment keep the original bytes. A warm run
finds the patch applied (the same diff, the same bytes after it) and
leaves the environment as it is.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .procs import venv_environ
from .venv import venv_python

# Written into an environment once a patch is applied.
APPLIED = "racematrix-patch.json"


class PatchError(RuntimeError):
    """A patch that does not apply; the message is one line."""


def diff_files(text):
    """The files a unified diff changes, relative to the folder ``patch -p1``
    runs in (``+++ b/numba/cuda/simulator/kernel.py`` ->
    ``numba/cuda/simulator/kernel.py``)."""
    found = []
    for line in text.splitlines():
        if line.startswith("+++ "):
            path = line[4:].split("\t")[0].strip()
            found.append(path.split("/", 1)[1] if "/" in path else path)
    return list(dict.fromkeys(found))


def site_packages(session):
    done = subprocess.run(
        [venv_python(session), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, timeout=60, check=True)
    return Path(done.stdout.strip())


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unlink_from_cache(path):
    """Replace ``path`` by a copy of itself, so that writing it changes no
    other hard link to the same bytes (uv's cache, other environments)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent,
                                         prefix=f".{path.name}.")
    os.close(handle)
    shutil.copy2(path, temporary)
    os.replace(temporary, path)


def failed_hunk(output):
    """One line from GNU patch's output naming what did not apply."""
    current, failures = None, []
    for line in output.splitlines():
        checking = re.match(r"(?:checking|patching) file (\S+)", line)
        if checking:
            current = checking.group(1)
        hunk = re.match(r"(Hunk #\d+ FAILED at \d+)", line)
        if hunk:
            failures.append(f"{hunk.group(1)} in {current}")
        missing = re.match(r"can't find file to patch", line)
        if missing:
            failures.append("a file it changes is not in the environment")
        if "Reversed (or previously applied) patch detected" in line:
            failures.append(f"{current} already has it (reversed or applied "
                            f"before)")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return failures[0] + more
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "patch failed without a message"


def apply(session, patch, diff, reinstall):
    """Apply ``diff`` (a ``patches.Diff`` of ``patch``) to the environment
    of ``session`` (a nox Session or ``venv.ProbeEnvironment``). Returns
    the raw result's ``patch`` record: name, diff file, its sha256, the
    files changed and their sha256 after; raises ``PatchError`` with one
    line where it does not apply. ``reinstall()`` puts the package's
    original files back (an environment patched by another version of the
    diff)."""
    if shutil.which("patch") is None:
        raise PatchError("GNU patch is not installed (e.g. `apt-get install "
                         "patch`); it applies the patches")
    site = site_packages(session)
    text = diff.file.read_text()
    files = diff_files(text)
    record = {"name": patch.name, "file": str(diff.file.name),
              "package": diff.package, "releases": str(diff.releases),
              "sha256": diff.sha256, "files": files}
    marker = site / APPLIED
    try:
        before = json.loads(marker.read_text())
    except (OSError, ValueError):
        before = None
    if before:
        if before.get("sha256") == record["sha256"] and all(
                (site / name).exists() and sha256(site / name) == digest
                for name, digest in before.get("after", {}).items()):
            return {**before, "reused": True}
        reinstall()  # another diff, or files changed since: start over
        marker.unlink(missing_ok=True)
    command = ["patch", "-p1", "--batch", "--forward", "--fuzz=0",
               "--no-backup-if-mismatch",
               "-d", str(site), "-i", str(diff.file)]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True,
                         text=True, timeout=120)
    if dry.returncode != 0:
        raise PatchError(f"patch {patch.name} ({diff.file.name}) does not "
                         f"apply: {failed_hunk(dry.stdout + dry.stderr)}")
    for name in files:
        if (site / name).exists():
            unlink_from_cache(site / name)
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise PatchError(f"patch {patch.name} ({diff.file.name}) does not "
                         f"apply: {failed_hunk(done.stdout + done.stderr)}")
    record["after"] = {name: sha256(site / name) for name in files
                       if (site / name).exists()}
    marker.write_text(json.dumps(record))
    return record


def reinstaller(session, package, version):
    """``reinstall()`` for ``apply``: the package's files as the wheel has
    them, from uv's cache, nothing else changed."""
    def reinstall():
        subprocess.run(["uv", "pip", "install", "-q", "--color", "never",
                        "--python", venv_python(session), "--reinstall",
                        "--no-deps", f"{package}=={version}"],
                       capture_output=True, text=True, timeout=600,
                       check=True, env=venv_environ(session.bin, {}))
    return reinstall
