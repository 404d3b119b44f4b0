"""racematrix: a reproduction matrix for the CUDA simulator's cuda-module race.

The logic behind ``noxfile.py``, in layers. A module imports only from its
own layer or a lower one (function-level imports included), never in a
circle, and a driver never imports another driver;
``tests/test_layers.py`` reads the imports from the source and holds the
package to this table. Read it bottom-up to learn the house.

====  ==============  =======================================================
layer module          its one job
====  ==============  =======================================================
0     errors          the errors a user can cause; one-line argparse
0     stats           Wilson, runs to rule out, quantiles, rank and exact
                      tests (SciPy)
0     markdown        the Markdown table helper and the Jinja2 templates
0     provenance      machine, GPU, time: where a figure comes from
0     fileio          atomic writes, the results folder's lock, running
                      markers, what a killed run left
0     procs           child processes: streaming, process groups, signals
0     validation      JSON Schema checks, one line per problem
0     launch_time     the launch-time workload and its rule (runs inside
                      an environment: standard library only)
0     launch_plugin   pytest plugin: launch time after a suite's tests
1     envspec         EnvSpec and the matrix settings
1     outcomes        JUnit XML -> test runs -> outcome counts; where a
                      suite's race failures were raised, test times
1     index           the package index (PEP 691/700)
1     interpreters    finding and fetching Pythons
1     venv            environments outside nox; what an environment holds
2     suites          suites declared as data; the MWE's suite
2     matrix          every suite with its lists
2     schedule        the order sessions run in: longest expected first,
                      from the rows' last times
2     rawresult       one environment's raw result: the record, its verdict,
                      the store that reads, validates and writes it
2     tables          raw results merged into the failure-rate tables
2     search          the bisect's search loop, for every metric
2     race_search     the race's bisect decisions
2     time_search     the launch-time rule and the bisect on time
2     measurement     the measurement interface (a built environment in,
                      raw fields out)
2     patches         candidate fixes declared as data: a matrix axis
3     companions      the install ladder (companions by upload date)
3     install         installing a release into an environment
3     patching        applying a patch to an installed environment
3     measure_race    measurement: the suite under pytest-repeat
3     measure_launch  measurement: the launch-time workload
3     probers         bisect probes on real environments
3     bisect_files    the bisect folder's files and Markdown
3     plots           the heatmap and the launch-time plot
3     fix_launches    launch time of the candidate fixes, interleaved
4     price_sections  the report's structure of the price and the fixes
4     report_sections the report's structure: one plain dict from rows,
                      bisects and recorded runs, for the templates
4     report          REPORT.md, results/upstream/ (templates/), the
                      tables, bisect files and plots
5     matrix_session  driver: nox -s matrix (one environment; report once)
5     bisect_session  driver: nox -s bisect
5     report_session  driver: nox -s report
5     mwe_figures     driver: nox -s mwe_figures
5     bench           driver: nox -s bench
5     reproducers     driver: nox -s reproducers (bug.py's real output)
5     ci              driver: python -m racematrix.ci (the CI workflow)
5     fix_compare     driver: nox -s fix_compare (the candidates compared)
====  ==============  =======================================================

Data flows one way: config -> environments -> measurements -> raw results
-> tables -> report. Only the drivers write the report.
"""

import re as _re

# The table above, read as data (module -> layer) by the layering test.
LAYERS = {name: int(layer) for layer, name in _re.findall(
    r"^(\d)\s+(\w+)\s", __doc__, flags=_re.MULTILINE)}
# Layers whose modules may not import each other: the drivers.
SEALED_LAYERS = (5,)
