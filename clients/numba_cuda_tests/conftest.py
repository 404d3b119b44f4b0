"""numba-cuda's own simulator tests, run from its wheel (``--pyargs
numba.cuda.tests.cudasim numba.cuda.tests.cudapy``) as a suite of the
matrix: someone else's tests, to show that a patch changes no outcome.

The wheel ships the tests but not numba-cuda's repository-root
``conftest.py``, whose option and class fixture ``CUDATestCase`` uses; this
file stands in for it. It is registered as a plugin so that its fixture
reaches tests outside this folder.
"""
import pytest


class NumbaCudaRootConftest:
    """What numba-cuda's repository-root conftest.py gives its tests."""

    @pytest.fixture(scope="class")
    def initialize_from_pytest_config(self, request):
        request.cls._dump_failed_filechecks = request.config.getoption(
            "dump_failed_filechecks")


def pytest_addoption(parser):
    parser.addoption("--dump-failed-filechecks", action="store_true",
                     help="dump reproducers of FileCheck tests that fail")


def pytest_configure(config):
    config.pluginmanager.register(NumbaCudaRootConftest(),
                                  "numba-cuda-root-conftest")
