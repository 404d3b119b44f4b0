"""racematrix: a reproduction matrix for the CUDA simulator's cuda-module race.

The logic behind ``noxfile.py``: environment specs, interpreter discovery,
classification of test runs, statistics, result tables, bisect and report.
Modules imported by the noxfile use only the standard library and
``packaging`` (which nox itself depends on).
"""
