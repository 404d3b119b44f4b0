"""Does the installed simulator pay the fix's lock? Pairs of the MWE's
kernel through the installed swap and numba-cuda 0.24.0's, in turn: run as a
script, or after a suite's tests (``-p racematrix.launch_time``)."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import inspect
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

try:  # the plugin's hooks run under pytest; nox's own process has none
    import pytest
except ImportError:
    pytest = None  # type: ignore[assignment]

MWE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "mwe")

# The row's workload and rule, chosen by a study of candidates idle and under
# load (results/bench.md, "The launch workload").
PAIRS = 3            # pairs at least (a row needs >= 3 launches a side)
MAX_PAIRS = 8        # at most, while undecided
DEVICE_CALLS = 30    # device-function calls per thread per launch
THREADS = 32
BLOCKS = 1
BUFFER_SIZE = 4
SWITCH_INTERVAL = 1e-4
SLOWER_RATIO = 2.0   # installed median / unlocked median at least: slower
ALIKE_RATIO = 1.5    # below (other code, every pair, a core idle): alike
MIN_IDLE_CPUS = 0.5  # the convoy needs a free core for the woken waiter
# Under nox -j: a row's pairs hold this file's lock exclusively, the other
# rows' pytest processes shared from their start, and the pairs begin once
# the other cores are idle (at most IDLE_WAIT s: else the matrix times the
# row again, alone, at its end).
LOCK_FILE = os.path.join(tempfile.gettempdir(), "racematrix-launch.lock")
LOCK_WAIT = 60.0
IDLE_WAIT = 5.0
IDLE_WINDOW = 0.2


def decide(ratio: float | None, idle_cpus: float | None = None,
           unlocked_code: bool = False, worst_pair: float | None = None,
           full: bool = True) -> str:
    """The one rule, for a row and a bisect probe: slower, alike or
    undecided."""
    if ratio is None:
        return "undecided"
    if unlocked_code:
        return "alike" if ratio < SLOWER_RATIO else "undecided"
    if ratio >= SLOWER_RATIO:
        return "slower"
    if full and ratio < ALIKE_RATIO and worst_pair is not None and \
            worst_pair < SLOWER_RATIO and idle_cpus is not None and \
            idle_cpus >= MIN_IDLE_CPUS:
        return "alike"
    return "undecided"


@contextlib.contextmanager
def unlocked_swap(fn: Any, fake_cuda_module: Any) -> Iterator[None]:  # numba-cuda 0.24.0's, verbatim
    from numba import cuda

    fn_globs = fn.__globals__
    orig = dict((k, v) for k, v in fn_globs.items() if v is cuda)
    repl = dict((k, fake_cuda_module) for k, v in orig.items())
    fn_globs.update(repl)
    try:
        yield
    finally:
        fn_globs.update(orig)


def swap_code(swap: Callable) -> list[str]:
    """The swap's body without comments, blank lines and indentation."""
    lines = inspect.getsource(swap).splitlines()
    body = lines[next(i for i, line in enumerate(lines)
                      if line.lstrip().startswith("def ")) + 1:]
    return [code for line in body if (code := line.split("#")[0].strip())]


def runs_unlocked_code() -> bool:
    """Whether the installed swap runs the unlocked swap's own code."""
    try:
        from numba.cuda.simulator import kernel
        return swap_code(kernel.swapped_cuda_module) == \
            swap_code(unlocked_swap)
    except Exception:  # no simulator to compare: treated as other code
        return False


def idle_cpu_seconds() -> float | None:
    """CPU seconds idle so far, all CPUs (/proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as stream:
            fields = stream.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def idle_since(clock: float, idle_before: float | None) -> float | None:
    """CPUs idle on average since ``clock``, when ``idle_before`` were."""
    now = idle_cpu_seconds()
    if now is None or idle_before is None:
        return None
    return round((now - idle_before) / max(time.monotonic() - clock, 1e-3), 2)


def wait_for_idle() -> float:
    """Seconds waited (at most IDLE_WAIT) for a core idle besides ours."""
    started = time.monotonic()
    while (os.cpu_count() or 1) > 1 and \
            time.monotonic() - started < IDLE_WAIT:  # one CPU: no other core
        clock, before = time.monotonic(), idle_cpu_seconds()
        time.sleep(IDLE_WINDOW)
        idle = idle_since(clock, before)
        if idle is None or idle >= 1 + MIN_IDLE_CPUS:
            break
    return round(time.monotonic() - started, 2)


def price(args: argparse.Namespace) -> dict[str, Any]:
    """The ``launch_seconds`` record; a failure is its ``error``."""
    clock, idle_before = time.monotonic(), idle_cpu_seconds()
    saved = sys.getswitchinterval()
    sides: dict[str, list[float]] = {"installed": [], "unlocked": []}
    error: str | None = None
    simulator: Any = None
    same: bool | None = None
    try:
        from numba import config
        if not config.ENABLE_CUDASIM:
            raise RuntimeError("the price is the simulator's: "
                               "NUMBA_ENABLE_CUDASIM is not 1")
        from numba.cuda.simulator import kernel
        simulator = kernel
        installed = simulator.swapped_cuda_module
        swaps = {"installed": installed, "unlocked": unlocked_swap}
        workload = Workload(args)
        simulator.swapped_cuda_module = unlocked_swap
        workload.warm_up()
        sys.setswitchinterval(args.switch_interval)
        same = swap_code(installed) == swap_code(unlocked_swap)
        pair = 0
        # More pairs while undecided and a core is free (without one no
        # convoy forms: the matrix times such a row again, alone, at its end).
        while pair < args.pairs or (
                pair < args.max_pairs and (free := idle_since(
                    clock, idle_before)) is not None
                and free >= MIN_IDLE_CPUS and decide(
                    ratio_of(sides), free, same, worst_pair(sides), False)
                == "undecided"):
            for name in sorted(swaps, reverse=pair % 2 == 1):
                simulator.swapped_cuda_module = swaps[name]
                sides[name].append(workload.launch())
            pair += 1
    except Exception as failure:  # an import, build or launch error
        error = f"{type(failure).__name__}: {failure}"[:300]
    finally:
        sys.setswitchinterval(saved)
        if simulator is not None:
            simulator.swapped_cuda_module = installed
    ratio, idle_cpus = ratio_of(sides), idle_since(clock, idle_before)
    record = dict(
        summarize(sides["installed"]), unlocked=summarize(sides["unlocked"]),
        ratio=None if ratio is None else round(ratio, 3),
        unlocked_code=same, worst_pair=worst_pair(sides),
        decision="error" if error else decide(
            ratio, idle_cpus, bool(same), worst_pair(sides),
            len(sides["installed"]) >= args.max_pairs),
        rule={"slower_ratio": SLOWER_RATIO, "alike_ratio": ALIKE_RATIO,
              "min_idle_cpus": MIN_IDLE_CPUS, "pairs": args.pairs,
              "max_pairs": args.max_pairs},
        workload={"threads_per_block": THREADS, "blocks": BLOCKS,
                  "device_calls": args.device_calls,
                  "buffer_size": BUFFER_SIZE, "location": args.location,
                  "switch_interval": args.switch_interval,
                  "cudasim": os.environ.get("NUMBA_ENABLE_CUDASIM", "0")},
        idle_cpus=idle_cpus, seconds=round(time.monotonic() - clock, 3))
    if error:
        record["error"] = error
    return record


def worst_pair(sides: dict[str, list[float]]) -> float | None:
    """The largest installed / unlocked ratio of one pair, or None."""
    pairs = list(zip(sides["installed"], sides["unlocked"]))
    return round(max(i / u for i, u in pairs), 3) if pairs else None


def ratio_of(sides: dict[str, list[float]]) -> float | None:
    if not sides["installed"] or not sides["unlocked"]:
        return None
    return statistics.median(sides["installed"]) / \
        statistics.median(sides["unlocked"])


def summarize(samples: list[float]) -> dict[str, Any]:
    """``n``, ``median``, ``p95``, ``max`` and ``samples`` of launch times."""
    if not samples:
        return {"n": 0, "median": None, "p95": None, "max": None,
                "samples": []}
    p95 = statistics.quantiles(samples, n=100, method="inclusive")[94] \
        if len(samples) > 1 else samples[0]
    return {"n": len(samples), "median": round(statistics.median(samples), 6),
            "p95": round(p95, 6), "max": round(max(samples), 6),
            "samples": [round(s, 6) for s in samples]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option, kind, default in (
            ("--pairs", int, PAIRS), ("--max-pairs", int, MAX_PAIRS),
            ("--switch-interval", float, SWITCH_INTERVAL),
            ("--device-calls", int, DEVICE_CALLS),
            ("--location", str, "persistent")):  # local: cuda.local.array
        parser.add_argument(option, type=kind, default=default)
    args = parser.parse_args(argv)
    if min(args.pairs, args.device_calls, args.switch_interval) <= 0 or \
            args.max_pairs < args.pairs:
        parser.error("the counts and --switch-interval must be positive, "
                     "--max-pairs at least --pairs")
    return args


class Workload:
    """The MWE's kernel; ``launch()`` times one."""

    def __init__(self, args: argparse.Namespace) -> None:
        sys.path.insert(0, MWE)
        import numpy as np
        from numba import cuda

        from allocator_factory import BufferAllocatorFactory
        from kernel_factory import KernelFactory

        self.cuda = cuda
        self.kernel = KernelFactory(
            BufferAllocatorFactory(BUFFER_SIZE, location=args.location),
            args.device_calls).build()[BLOCKS, THREADS]
        self.output = np.zeros(THREADS * BLOCKS, dtype=np.float32)

    def warm_up(self) -> None:
        # Compiles on a GPU; in the simulator every thread returns at once.
        self.kernel(self.output, 0)
        self.cuda.synchronize()

    def launch(self) -> float:
        """Seconds of one launch; a race or a wrong output raises."""
        self.output[:] = 0
        started = time.perf_counter()
        self.kernel(self.output, len(self.output))
        self.cuda.synchronize()
        seconds = time.perf_counter() - started
        if not (self.output == 1).all():
            raise RuntimeError(f"wrong output after {seconds:.3f} s: "
                               f"{int((self.output == 1).sum())} of "
                               f"{len(self.output)} threads wrote 1")
        return seconds


# --- The pytest plugin: the pairs after the suite's tests. ---

def _take(lock: Any, mode: int) -> bool:
    """Wait up to LOCK_WAIT for flock ``mode``; True if held."""
    since = time.monotonic()
    while time.monotonic() - since < LOCK_WAIT:
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            return True
        except OSError:
            time.sleep(0.05)
    return False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("launch time", "time launches after the tests")
    group.addoption("--launch-time-json", default=None, metavar="PATH",
                    help="after the tests, time launches of the MWE's kernel "
                         "in this process and write the record here")
    group.addoption("--launch-time-options", default="", metavar="OPTIONS",
                    help="racematrix/launch_time.py's options for them")


def load_initial_conftests(early_config: pytest.Config) -> None:
    """The shared lock before the suite's conftest imports numba."""
    if early_config.known_args_namespace.launch_time_json:
        early_config.launch_lock = open(LOCK_FILE, "a")  # type: ignore[attr-defined]
        _take(early_config.launch_lock, fcntl.LOCK_SH)  # type: ignore[attr-defined]


def sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config, path = session.config, session.config.getoption(
        "launch_time_json")
    if not path or config.option.collectonly or not session.testscollected:
        return  # no test ran here: nothing to time after
    args = parse_args(shlex.split(config.getoption("launch_time_options")))
    lock: Any = config.launch_lock  # type: ignore[attr-defined]
    waited, exclusive, idle_wait = time.monotonic(), False, 0.0
    # The unlocked swap's own code reads alike without a free core too.
    if not runs_unlocked_code():
        fcntl.flock(lock, fcntl.LOCK_UN)
        exclusive = _take(lock, fcntl.LOCK_EX)
        idle_wait = wait_for_idle()
    waited = round(time.monotonic() - waited, 2)
    try:
        record = price(args)
    finally:
        lock.close()
    record.update(lock_wait=waited, exclusive=exclusive, idle_wait=idle_wait)
    with open(f"{path}.part", "w") as stream:
        json.dump({"launch_seconds": record}, stream)
    os.replace(f"{path}.part", path)


if pytest is not None:
    pytest_load_initial_conftests = pytest.hookimpl(tryfirst=True)(
        load_initial_conftests)
    # After the JUnit XML is written.
    pytest_sessionfinish = pytest.hookimpl(trylast=True)(sessionfinish)


def main(argv: list[str] | None = None) -> int:
    record = price(parse_args(argv))
    print(json.dumps({"launch_seconds": record}), flush=True)
    return 1 if "error" in record else 0


if __name__ == "__main__":
    sys.exit(main())
