import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATA = Path(__file__).resolve().parent / "data"
# What the end-to-end tests build: a release with the race and one without.
BUGGY = "numba==0.60.0"
FIXED = "numba-cuda==0.30.4"


@pytest.fixture
def data_dir():
    return DATA


@pytest.fixture(scope="session")
def e2e_python():
    """A Python that is installed here and has wheels for BUGGY and FIXED:
    nox's own where it has, else the newest that has. Never assumed to be
    nox's (numba 0.60 has no wheel for 3.13)."""
    from racematrix.interpreters import pick_python
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = pick_python([[BUGGY], [FIXED]], prefer=this)
    if python is None:
        pytest.skip(f"no installed Python 3.10-3.14 has wheels for both "
                    f"{BUGGY} and {FIXED}: install one, e.g. `uv python "
                    f"install 3.12`")
    return python
