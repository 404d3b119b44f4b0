"""Patches as a matrix axis: the declarations, the columns, and applying a
diff with GNU patch (on real files, and on a real environment in the e2e
test)."""
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from racematrix import patching
from racematrix.envspec import EnvSpec
from racematrix.errors import BadInput
from racematrix.suites import load_matrix
from racematrix.suites import NONE, applies, load_patches
from racematrix.suites import pick

PROJECT = Path(__file__).resolve().parent.parent

DIFF = textwrap.dedent("""\
    Why: a header, which patch ignores.

    --- a/pkg/mod.py
    +++ b/pkg/mod.py
    @@ -1,3 +1,3 @@
     def f():
    -    return 1
    +    return 2
     # end
    """)


def project(tmp_path, diff=DIFF, releases=">=0.26"):
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "fix.diff").write_text(diff)
    return {"patches": {"fix": {"description": "a fix", "diffs": [
        {"file": "patches/fix.diff", "package": "Numba_CUDA",
         "releases": releases}]}}}


def test_declared_patch_has_a_diff_per_release_range(tmp_path):
    patch = load_patches(project(tmp_path), tmp_path)["fix"]
    assert patch.diff_for("numba-cuda", "0.30.4").file.name == "fix.diff"
    assert patch.diff_for("numba-cuda", "0.24.0") is None
    assert patch.diff_for("numba", "0.30.4") is None
    assert len(patching.sha256(patch.diffs[0].file)) == 64


@pytest.mark.parametrize("change, words", [
    (lambda t: t["patches"]["fix"].pop("diffs"), ["'diffs'", "is a required property"]),
    (lambda t: t["patches"]["fix"]["diffs"][0].update(file="fix.diff"),
     ["diffs[0].file", "'fix.diff' does not match"]),
    (lambda t: t["patches"]["fix"]["diffs"][0].update(
        file="patches/gone.diff"), ["'patches/gone.diff' is not a file"]),
    (lambda t: t["patches"]["fix"]["diffs"][0].update(releases=">>0.26"),
     ["'>>0.26' is not a PEP 440 specifier"]),
    (lambda t: t["patches"].update(none=t["patches"]["fix"]),
     ["[tool.racematrix] in pyproject.toml.patches", "'none'"]),
])
def test_a_bad_declaration_is_one_line(tmp_path, change, words):
    table = {"specs": ["numba==0.60.0"], **project(tmp_path),
             "suites": {"mwe": {"path": "mwe", "signature": "x"}}}
    change(table)
    shutil.copytree(PROJECT / "mwe", tmp_path / "mwe")
    with pytest.raises(BadInput) as caught:
        load_matrix(table, {}, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert all(word in message for word in words), message


def test_columns_are_none_and_the_listed_ones_or_matrix_patches(tmp_path):
    declared = load_patches(project(tmp_path), tmp_path)
    def select_patches(listed, environ):
        return pick("MATRIX_PATCHES", environ, [NONE, *declared],
                    [NONE, *listed])
    assert select_patches(("fix",), {}) == (NONE, "fix")
    assert select_patches((), {}) == (NONE,)
    assert select_patches(("fix",), {"MATRIX_PATCHES": "fix"}) == ("fix",)
    with pytest.raises(BadInput, match="MATRIX_PATCHES names unknown 'fxi'"):
        select_patches((), {"MATRIX_PATCHES": "none fxi"})
    with pytest.raises(BadInput, match="the config names unknown 'fxi'"):
        select_patches(("fxi",), {})


def test_a_patch_column_holds_the_pinned_releases_it_is_meant_for(tmp_path):
    patch = load_patches(project(tmp_path), tmp_path)["fix"]
    assert applies(patch, EnvSpec("3.12", ("numba-cuda==0.30.4",), True))
    assert not applies(patch, EnvSpec("3.12", ("numba-cuda==0.24.0",), True))
    assert not applies(patch, EnvSpec("3.12", ("numba-cuda",), True))
    patched = EnvSpec("3.12", ("numba-cuda==0.30.4",), True, patch="fix")
    assert patched.env_id == "py3.12-numba-cuda-0.30.4+patch.fix-sim1"


def test_matrix_sessions_of_a_suite_that_lists_a_patch(tmp_path):
    table = {"pythons": ["3.12"], "sim": [1],
             "specs": ["numba-cuda==0.30.4", "numba-cuda==0.24.0"],
             "suites": {"mwe": {"path": "mwe", "signature": "x",
                                "patches": ["fix"]}},
             **project(tmp_path)}
    shutil.copytree(PROJECT / "mwe", tmp_path / "mwe")
    matrix = load_matrix(table, {}, tmp_path)
    names = [spec.env_id for spec in matrix.envs()]
    assert names == ["py3.12-numba-cuda-0.30.4-sim1",
                     "py3.12-numba-cuda-0.30.4+patch.fix-sim1",
                     "py3.12-numba-cuda-0.24.0-sim1"]
    only = load_matrix(table, {"MATRIX_PATCHES": "fix"}, tmp_path)
    assert [spec.patch for spec in only.envs()] == ["fix"]


def test_diff_files_and_the_line_for_a_failed_hunk():
    assert patching.diff_files(DIFF) == ["pkg/mod.py"]
    output = ("checking file pkg/mod.py\n"
              "Hunk #1 FAILED at 1.\n"
              "1 out of 1 hunk FAILED\n")
    assert patching.failed_hunk(output) == "Hunk #1 FAILED at 1 in pkg/mod.py"


@pytest.mark.skipif(shutil.which("patch") is None, reason="no GNU patch")
def test_apply_changes_a_copy_and_leaves_every_hard_link_alone(tmp_path):
    """As uv installs: the environment's file is a hard link to a cached
    one. The patch changes the environment's file only."""
    cache = tmp_path / "cache" / "mod.py"
    cache.parent.mkdir()
    cache.write_text("def f():\n    return 1\n# end\n")
    site = tmp_path / "env" / "lib" / "python3.12" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    os.link(cache, site / "pkg" / "mod.py")
    other = tmp_path / "other-env-mod.py"
    os.link(cache, other)
    table = project(tmp_path)
    patch = load_patches(table, tmp_path)["fix"]
    diff = patch.diffs[0]

    class Env:
        bin = str(tmp_path / "env" / "bin")

    record = patching.apply(Env(), patch, diff.package, "1.0")
    assert (site / "pkg" / "mod.py").read_text().count("return 2") == 1
    assert cache.read_text().count("return 1") == 1  # the cache: as it was
    assert other.read_text() == cache.read_text()
    assert not (site / "pkg" / "mod.py").samefile(cache)  # patch's own file
    assert record["files"] == ["pkg/mod.py"]
    assert record["after"]["pkg/mod.py"] == patching.sha256(
        site / "pkg" / "mod.py")
    # Again (a warm run): found applied, nothing changed.
    assert patching.apply(Env(), patch, diff.package, "1.0")["reused"]
    # A diff that does not apply: one line naming the hunk.
    (tmp_path / "patches" / "fix.diff").write_text(
        DIFF.replace("return 1", "return 7"))
    broken = load_patches(table, tmp_path)["fix"]
    (site / patching.APPLIED).unlink()
    (site / "pkg" / "mod.py").write_text(cache.read_text())
    with pytest.raises(patching.PatchError) as caught:
        patching.apply(Env(), broken, diff.package, "1.0")
    assert "Hunk #1 FAILED at 1 in pkg/mod.py" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("patch") is None, reason="no GNU patch")
def test_patched_and_unpatched_environments_through_nox(tmp_path, e2e_python,
                                                       matrix_envs):
    """The shipped candidate fix on a real release through `nox -s matrix`:
    an unpatched and a patched row of one release, the unpatched
    environment byte for byte as the wheel has it, the patched one
    recorded with its diff; then a diff that does not apply: an `error`
    row that names the hunk, and no other row touched."""
    import hashlib
    import json
    import sys
    from conftest import FIXED, copy_project, seed_env
    project = tmp_path / "project"
    copy_project(project, "results", "tests")
    # The unpatched environment is matrix_run's of FIXED, reused; the
    # patched one starts as a copy of hard links to its files (as uv links
    # both from its cache): the patch must change its own copy only.
    built = matrix_envs[FIXED]
    for patch in (None, "private-globals"):
        env_id = EnvSpec(e2e_python, (FIXED,), True, "mwe", patch).env_id
        seed_env(project, f"env({env_id})", built, copy=patch is not None)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MATRIX_", "RACEMATRIX_"))}
    env.update(MATRIX_SUITES="mwe", MATRIX_PYTHONS=e2e_python,
               MATRIX_SPECS=FIXED, MATRIX_SIM="1", MATRIX_LAUNCHES="0",
               MATRIX_PATCHES="none private-globals",
               RACEMATRIX_RESULTS=str(results))

    def nox_matrix():
        # One test of the suite: the rows' verdicts come from it as from
        # all (matrix_run runs the whole suite on these releases).
        return subprocess.run([sys.executable, "-m", "nox", "-s", "matrix",
                               "--", "-k", "test_syncthreads_trigger"],
                              cwd=project, env=env, capture_output=True,
                              text=True, timeout=1200)

    done = nox_matrix()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    plain_id = f"py{e2e_python}-numba-cuda-0.30.4-sim1"
    patched_id = f"py{e2e_python}-numba-cuda-0.30.4+patch.private-globals-sim1"
    plain = json.loads((results / "raw" / f"{plain_id}.json").read_text())
    patched = json.loads((results / "raw" / f"{patched_id}.json").read_text())
    assert patched["patch"]["name"] == "private-globals"
    changed = patched["patch"]["files"]
    assert changed == ["numba_cuda/numba/cuda/simulator/kernel.py"]
    assert patched["patch"]["sha256"] == hashlib.sha256(
        (project / "patches" / patched["patch"]["file"]).read_bytes()
    ).hexdigest()
    assert patched["verdict"] == plain["verdict"] == "not-reproduced"
    assert patched["spec"]["patch"] == "private-globals"

    def installed(session_dir):
        [site] = (project / ".nox").glob(
            f"{session_dir}/lib/python*/site-packages")
        return site / changed[0]

    plain_file = installed("env-*-numba-cuda-0-30-4-sim1")
    patched_file = installed("env-*-numba-cuda-0-30-4-patch-private-*")
    # The unpatched environment has the wheel's bytes, as RECORD says.
    [record] = plain_file.parents[4].glob("numba_cuda-0.30.4.dist-info/RECORD")
    digest = next(line.split(",")[1] for line in record.read_text().splitlines()
                  if line.startswith(changed[0] + ","))
    import base64
    wheel_digest = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(
        plain_file.read_bytes()).digest()).rstrip(b"=").decode()
    assert wheel_digest == digest
    assert hashlib.sha256(patched_file.read_bytes()).hexdigest() == \
        patched["patch"]["after"][changed[0]]
    assert patched_file.read_bytes() != plain_file.read_bytes()
    assert os.stat(patched_file).st_ino != os.stat(plain_file).st_ino

    # A diff that does not apply (its context no longer matches).
    diff = project / "patches" / "private-globals-numba-cuda-0.26.diff"
    diff.write_text(diff.read_text().replace(
        "\n import threading\n", "\n import threadingX\n", 1))
    # The environment as the first run left it: another diff than the one
    # applied there, so the package's files are put back first.
    env["MATRIX_PATCHES"] = "private-globals"
    # (Where the row had results, the failed attempt is kept beside them:
    # test_e2e's test_a_failed_attempt_keeps_the_measured_row_beside_it.)
    # Where it never had results: an `error` row that names the hunk.
    env["RACEMATRIX_RESULTS"] = str(tmp_path / "fresh-results")
    done = nox_matrix()
    broken = json.loads((tmp_path / "fresh-results" / "raw" /
                         f"{patched_id}.json").read_text())
    assert broken["verdict"] == "error" and broken["runs"] == 0
    assert "does not apply: Hunk #" in broken["reason"]
    assert "\n" not in broken["reason"]
