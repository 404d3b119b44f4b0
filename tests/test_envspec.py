import pytest

from racematrix.envspec import (EnvSpec, load_config, parse_python, parse_sim,
                                parse_spec)
from racematrix.errors import BadInput

TABLE = {"pythons": ["3.10", "3.11"], "sim": [1, 0], "count": 3,
         "timeout": 60, "specs": ["numba==0.60.0",
                                  "numba-cuda==0.30.4 numba==0.68.1"]}


def test_env_ids_are_readable_and_distinct():
    ids = {EnvSpec(python, spec, sim).env_id
           for python in ("3.10", "3.12")
           for spec in (("numba==0.60.0",),
                        ("numba-cuda==0.18.1", "numba==0.61.2", "cuda-bindings<13"),
                        ("numba-cuda[cu12]==0.18.1",))
           for sim in (True, False)}
    assert len(ids) == 12
    assert "py3.10-numba-0.60.0-sim1" in ids
    assert "py3.12-numba-cuda-0.18.1+numba-0.61.2+cuda-bindings-lt13-sim0" in ids
    assert "py3.10-numba-cuda.cu12-0.18.1-sim1" in ids


@pytest.mark.parametrize("spec, target", [
    (("numba==0.60.0",), "numba"),
    (("numba-cuda==0.30.4", "numba==0.68.1"), "numba-cuda"),
    (("Numba_CUDA==0.30.4",), "numba-cuda"),
])
def test_target_follows_numba_cuda(spec, target):
    assert EnvSpec("3.11", spec, True).target == target


def test_config_from_table():
    config = load_config(TABLE, {})
    assert config.pythons == ("3.10", "3.11")
    assert config.sims == (True, False)
    assert config.specs[1] == ("numba-cuda==0.30.4", "numba==0.68.1")
    assert (config.count, config.timeout) == (3, 60)


def test_environment_variables_replace_lists():
    config = load_config(TABLE, {
        "MATRIX_PYTHONS": "3.12", "MATRIX_SIM": "1",
        "MATRIX_SPECS": "numba==0.60.0;numba-cuda==0.30.4 numba==0.68.1;"})
    assert config.pythons == ("3.12",)
    assert config.sims == (True,)
    assert config.specs == (("numba==0.60.0",),
                            ("numba-cuda==0.30.4", "numba==0.68.1"))


@pytest.mark.parametrize("environ, message", [
    ({"MATRIX_PYTHONS": "3.9"}, "unsupported Python 3.9: the matrix needs 3.10"),
    ({"MATRIX_PYTHONS": "three"}, "malformed Python version 'three'"),
    ({"MATRIX_PYTHONS": " "}, "MATRIX_PYTHONS is set but empty"),
    ({"MATRIX_SIM": "yes"}, "malformed simulator flag 'yes'"),
    ({"MATRIX_SPECS": "numba=0.60"}, "malformed requirement 'numba=0.60'"),
    ({"MATRIX_SPECS": ";;"}, "MATRIX_SPECS is set but empty"),
])
def test_malformed_values_get_one_line(environ, message):
    with pytest.raises(BadInput) as raised:
        load_config(TABLE, environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_parsers():
    assert parse_python("3.13") == "3.13"
    assert parse_sim("0") is False
    assert parse_spec(" numba==0.60.0  numpy<2 ") == ("numba==0.60.0", "numpy<2")


@pytest.mark.parametrize("one, other", [
    ("numba==0.60", "numba==0.60.0"),
    ("Numba==0.60.0", "numba==0.60.0"),
    ("numba==0.60.0.0", "numba==0.60"),
    ("numba_cuda[cu12]==0.30.4", "numba-cuda[cu12]==0.30.4"),
    ("numba>=0.60,<0.62", "numba<0.62,>=0.60"),
])
def test_pep440_equal_specs_are_one_environment(one, other):
    assert parse_spec(one) == parse_spec(other)
    assert EnvSpec("3.11", parse_spec(one), True).env_id == \
        EnvSpec("3.11", parse_spec(other), True).env_id


def test_equal_specs_make_one_row_in_the_matrix():
    config = load_config(TABLE, {"MATRIX_SPECS": "numba==0.60;numba==0.60.0"})
    assert config.specs == (("numba==0.60.0",),)


def test_spec_normal_form_keeps_existing_ids_and_prereleases():
    assert parse_spec("numba==0.60.0") == ("numba==0.60.0",)
    assert parse_spec("numba==0.61.1rc1") == ("numba==0.61.1rc1",)
    assert parse_spec("numba==0.60.*") == ("numba==0.60.*",)
    assert parse_spec("numba==1.2.3.4") == ("numba==1.2.3.4",)
