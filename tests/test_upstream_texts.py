"""The texts for numba-cuda and CuBIE (``results/upstream/``): none of this
project's words, no path of any machine, no relative link, within each
receiver's length outside ``<details>``, and the ask, the key figure and
the command to reproduce on the first screen. Checked on the committed
texts and on texts generated here from the test data."""
import re

import pytest

from racematrix import report

from conftest import PROJECT

pytest.importorskip("jinja2")

PROJECT_WORDS = re.compile(
    r"\b(rows?|ways?|ladder|probes?|rule|sim[01]|py3\.\d+-[\w.+-]+)\b",
    re.IGNORECASE)

def patch_names():
    """Every patch declared in pyproject's [tool.racematrix.patches]: the
    upstream texts say "this change" or words, never these names."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    table = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    return sorted(table["tool"]["racematrix"].get("patches", {}))


PATCH_NAMES = patch_names()
PATCH_NAME = re.compile(r"(?<![\w-])(" + "|".join(
    re.escape(name) for name in PATCH_NAMES) + r")(?![\w-])") \
    if PATCH_NAMES else None
# Words the figures must give, never an adjective in their place.
VAGUE = re.compile(r"\bseveral times\b", re.IGNORECASE)
MACHINE_PATH = re.compile(r"(/(work|root|home|tmp|Users)/|[A-Z]:\\|"
                          r"site-packages|\.nox\b)")
LINK = re.compile(r"\]\(([^)]*)\)")
# Lines outside <details>, at most, per text.
LIMITS = {"numba-cuda-issue": 150, "numba-cuda-pr": 30,
          "numba-cuda-690-comment": 15, "cubie-issue": 150}
COMMITTED = PROJECT / "results" / "upstream"


def outside_details(text):
    return re.sub(r"<details>.*?</details>", "", text, flags=re.DOTALL)


def visible_lines(text):
    """Lines a reader sees outside ``<details>``, code blocks counted; a
    run of blank lines outside code reads as one."""
    parts = outside_details(text).split("```")
    parts[::2] = [re.sub(r"\n{3,}", "\n\n", part) for part in parts[::2]]
    return "```".join(parts).splitlines()


def problems(name, text):
    found = [f"project word {m.group(0)!r}"
             for m in PROJECT_WORDS.finditer(text)]
    found += [f"machine path {m.group(0)!r}"
              for m in MACHINE_PATH.finditer(text)]
    if PATCH_NAME:
        found += [f"patch name {m.group(0)!r}"
                  for m in PATCH_NAME.finditer(text)]
    found += [f"vague figure {m.group(0)!r}" for m in VAGUE.finditer(text)]
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    found += [f"relative link {link!r}" for link in LINK.findall(prose)
              if not link.startswith("https://")]
    lines = visible_lines(text)
    if len(lines) > LIMITS[name]:
        found.append(f"{len(lines)} lines outside <details>, over "
                     f"{LIMITS[name]}")
    return found


@pytest.fixture(scope="module")
def generated(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("texts")
    data = PROJECT / "tests" / "data"
    report.build_report([data / "raw"], out, out / "bisect", "nox -s report",
                        plot=False)
    return {name: (out / "upstream" / f"{name}.md").read_text()
            for name in LIMITS}


@pytest.mark.parametrize("name", LIMITS)
def test_generated_texts_are_in_the_receivers_words(generated, name):
    assert problems(name, generated[name]) == []


@pytest.mark.parametrize("name", LIMITS)
def test_committed_texts_are_in_the_receivers_words(name):
    path = COMMITTED / f"{name}.md"
    if not path.exists():
        pytest.skip(f"{path.name} not generated yet (nox -s report)")
    assert problems(name, path.read_text()) == []


@pytest.mark.parametrize("name, ask, command", [
    ("numba-cuda-issue", "We ask", "python bug_slowdown.py"),
    ("cubie-issue", "We ask", "python bug_slowdown.py"),
    ("numba-cuda-pr", "Closes", "python bug_slowdown.py"),
    ("numba-cuda-690-comment", "We offer", "cuda.syncthreads()"),
])
def test_the_first_screen_holds_the_ask_the_figure_and_the_command(
        name, ask, command):
    path = COMMITTED / f"{name}.md"
    if not path.exists():
        pytest.skip(f"{path.name} not generated yet (nox -s report)")
    first = "\n".join(visible_lines(path.read_text())[:40])
    assert ask in first
    assert command in first
    assert re.search(r"\d+(\.\d+)? s\b|\d+ of \d+", first), "a key figure"


def test_the_checks_catch_what_they_look_for():
    text = ("A row of probes from /work/x in py3.12-numba-cuda-0.30.4-sim1, "
            "see [here](failure_rates.md).\n")
    found = problems("numba-cuda-690-comment", text)
    assert len(found) >= 5
    assert PATCH_NAMES, "pyproject declares the patches"
    for name in PATCH_NAMES:
        assert problems("numba-cuda-pr", f"with the change `{name}`.") == [
            f"patch name {name!r}"]
    assert problems("numba-cuda-pr", "launches are several times slower") \
        == ["vague figure 'several times'"]
    assert problems("numba-cuda-690-comment",
                    "\n".join(["x"] * 16)) == [
        "16 lines outside <details>, over 15"]
    assert problems("numba-cuda-pr", "<details>\n" + "x\n" * 40
                    + "</details>\nend") == []
