"""The CI workflow's own shell steps, run here in order as GitHub Actions
would run them: list the jobs, run one job's session, gather its artifact,
merge. No GitHub runner exists here, so the runner's part (checkout,
setup-python, artifact transfer) is played by the test; every `run:` script
is the workflow's, unchanged but for its `${{ }}` expressions."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import copy_project

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parent.parent
WORKFLOW = PROJECT / ".github" / "workflows" / "matrix.yml"
PYTHON = None  # set by the fixture below: a Python with wheels for the MWE
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def render(text, context):
    """Replace each ``${{ expression }}`` by its value in ``context``; an
    expression the test does not know fails it, so a new one is noticed."""
    def value(match):
        if match.group(1) not in context:
            pytest.fail(f"the test does not know ${{{{ {match.group(1)} }}}}")
        return context[match.group(1)]
    return EXPRESSION.sub(value, text)


def run_steps(job, context, cwd, env):
    """Run a job's `run:` steps that are not installs (nox and uv are
    already here) with bash -e, as Actions does."""
    job_env = {k: render(str(v), context) for k, v in job.get("env", {}).items()}
    for step in job["steps"]:
        script = step.get("run")
        if script is None or script.startswith("python -m pip install"):
            continue
        done = subprocess.run(["bash", "-e", "-c", render(script, context)],
                              cwd=cwd, env={**env, **job_env},
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
            pytest.fail(f"step exited {done.returncode}:\n{script}\n"
                        f"--- last lines ---\n{tail}", pytrace=False)


@pytest.fixture(autouse=True)
def python_with_wheels(e2e_python):
    global PYTHON
    PYTHON = e2e_python


@pytest.fixture
def checkout(tmp_path, matrix_envs, report_env):
    """What actions/checkout gives a job: the source and committed results,
    nothing built (copied without git: works from a source archive too),
    but for the MWE's environment of numba 0.60.0 and the report's, which
    nox reuses: the ones built in the project's .nox (by matrix_run, and
    for the report tests), shared rather than built again."""
    root = tmp_path / "checkout"
    copy_project(root)
    built = matrix_envs["numba==0.60.0"]
    (root / ".nox").mkdir()
    (root / ".nox" / built.name).symlink_to(built, target_is_directory=True)
    (root / ".nox" / "report").symlink_to(report_env,
                                          target_is_directory=True)
    return root


def test_workflow_lists_runs_and_merges_one_environment(checkout, tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    inputs = {"pythons": PYTHON, "specs": "numba==0.60.0", "sim": "1 0",
              "count": "1", "gpu_runner": ""}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MATRIX_", "RACEMATRIX_"))}
    # A run by hand (not the schedule) that names no suite.
    suites = ("inputs.suites || (github.event_name == 'schedule' && "
              "'mwe cubie') || ''")
    env.update({name: render(str(value), {
        suites: "", **{f"inputs.{key} || ''": inputs[key] for key in inputs}})
        for name, value in workflow["env"].items()})
    # The job's row without launch time: the matrix's own tests time
    # launches; here only the jobs' plumbing is under test.
    env["MATRIX_LAUNCHES"] = "0"

    # Job "list": its output is the job matrix.
    output = tmp_path / "list-output"
    output.touch()
    run_steps(jobs["list"], {"inputs.gpu_runner || ''": inputs["gpu_runner"]},
              checkout, {**env, "GITHUB_OUTPUT": str(output)})
    include = json.loads(output.read_text().split("include=", 1)[1])
    assert [job["session"] for job in include] == [
        f"env(py{PYTHON}-numba-0.60.0-sim1)"]  # sim0: no GPU runner

    # Job "run", once per entry; its artifact lands where download-artifact
    # puts it: gathered/<artifact name>/.
    gathered = checkout / "gathered"
    for job in include:
        context = {"matrix.session": job["session"],
                   "matrix.runs_on": job["runs_on"],
                   "inputs.count || '1'": inputs["count"]}
        run_steps(jobs["run"], context, checkout, env)
        artifact = gathered / job["artifact"]
        artifact.mkdir(parents=True)
        for raw in (checkout / "results" / "raw").glob("*.json"):
            shutil.copy(raw, artifact)
    shutil.rmtree(checkout / "results")  # the report job's fresh checkout

    # Job "report": merges every artifact.
    run_steps(jobs["report"], {}, checkout, env)
    table = json.loads((checkout / "results" / "failure_rates.json").read_text())
    assert [(row["env"], row["verdict"], row["machine"])
            for row in table["rows"]] == [
        (f"py{PYTHON}-numba-0.60.0-sim1", "reproduced", "github-ubuntu-latest")]
    report = (checkout / "results" / "REPORT.md").read_text()
    assert "github-ubuntu-latest" in report
    assert (checkout / "results" / "failure_rates.png").stat().st_size > 0
