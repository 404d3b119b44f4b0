import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir():
    return DATA
