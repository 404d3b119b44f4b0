"""A patch's diff applied to an installed environment with GNU patch."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .suites import Patch
from .procs import venv_environ

APPLIED = "racematrix-patch.json"  # written into a patched environment
logger = logging.getLogger(__name__)


class PatchError(RuntimeError):
    """A patch that does not apply; the message is one line."""


def diff_files(text: str) -> list[str]:
    """The files a unified diff changes, as ``patch -p1`` names them."""
    return list(dict.fromkeys(
        path.split("/", 1)[-1] for line in text.splitlines()
        if line.startswith("+++ ") and (path := line[4:].split("\t")[0]
                                        .strip())))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def failed_hunk(output: str) -> str:
    """One line from GNU patch's output naming what did not apply."""
    current, failures = None, []
    for line in output.splitlines():
        if found := re.match(r"(?:checking|patching) file (\S+)", line):
            current = found.group(1)
        elif found := re.match(r"Hunk #\d+ FAILED at \d+", line):
            failures.append(f"{found.group()} in {current}")
        elif line.startswith("can't find file to patch"):
            failures.append("a file it changes is not in the environment")
        elif line.startswith("Reversed (or previously applied) patch"):
            failures.append(f"{current} already has it (reversed or applied "
                            f"before)")
    if failures:
        more = len(failures) - 1
        return failures[0] + (f" (and {more} more)" if more else "")
    lines = output.strip().splitlines() or ["patch failed without a message"]
    return lines[-1].strip()[:200]


def apply(session: Any, patch: Patch, package: str, version: str
          ) -> dict[str, Any]:
    """Apply ``patch`` to ``session``'s ``package``; its ``patch`` record."""
    diff = patch.diff_for(package, version)
    if diff is None:
        raise PatchError(f"patch {patch.name} has no diff for {package} "
                         f"{version}")
    logger.info("patch %s: %s onto %s %s", patch.name, diff.file.name,
                package, version)
    if shutil.which("patch") is None:
        raise PatchError("GNU patch is not installed (e.g. `apt-get install "
                         "patch`); it applies the patches")
    site, = Path(session.bin).parent.glob("lib/python*/site-packages")
    files = diff_files(diff.file.read_text())
    record: dict[str, Any] = {
        "name": patch.name, "file": diff.file.name, "package": diff.package,
        "releases": str(diff.releases), "sha256": sha256(diff.file),
        "files": files}
    try:
        before = json.loads((site / APPLIED).read_text())
    except (OSError, ValueError):
        before = None
    if before:
        if before.get("sha256") == record["sha256"] and all(
                (site / name).exists() and sha256(site / name) == digest
                for name, digest in before.get("after", {}).items()):
            return {**before, "reused": True}
        # Another diff, or files changed since: the wheel's files again.
        subprocess.run(["uv", "pip", "install", "-q", "--color", "never",
                        "--python", f"{session.bin}/python", "--reinstall",
                        "--no-deps", f"{diff.package}=={version}"],
                       capture_output=True, text=True, timeout=600,
                       check=True, env=venv_environ(session.bin, {}))
        (site / APPLIED).unlink(missing_ok=True)
    # A dry run first: every hunk applies, or none. GNU patch writes each
    # file anew, so uv's cached copy (a hard link) is never changed.
    for dry_run in (["--dry-run"], []):
        done = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "--fuzz=0",
             "--no-backup-if-mismatch", "-d", str(site), "-i", str(diff.file),
             *dry_run], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PatchError(f"patch {patch.name} ({diff.file.name}) does "
                             f"not apply: "
                             f"{failed_hunk(done.stdout + done.stderr)}")
    record["after"] = {name: sha256(site / name) for name in files
                       if (site / name).exists()}
    (site / APPLIED).write_text(json.dumps(record))
    return record

