"""racematrix: a reproduction matrix for the CUDA simulator's cuda-module race.

The logic behind ``noxfile.py``, in layers: a module imports only from its
own layer or a lower one, function-level imports included, and the drivers
(``*_session``, ``bench``, ``ci``, ...) never import each other. The layers
are import-linter's layers contract, ``[tool.importlinter]`` in
pyproject.toml (top first; each module's docstring says its one job), and
``nox -s tests`` checks them.

Data flows one way: config -> environments -> measurements -> raw results
-> tables -> report. Only the drivers write the report.
"""
