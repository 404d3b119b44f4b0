"""Launch time of a CuBIE-like kernel (the MWE's, ``mwe/``), at natural
settings: the workload and the rule that says how many launches a matrix
row takes. It runs inside an environment under test, so it imports no
other racematrix module and nothing but the standard library (numba and
numpy come from the environment).

Run with::

    NUMBA_ENABLE_CUDASIM=1 python racematrix/launch_time.py [--launches 20] [--limit 30] [--budget 120]

Each thread of the block calls a device function from another module
(``mwe/allocator_factory.py``) many times, at Python's default switch
interval, as a CuBIE kernel does. The allocator hands out a slice of the
kernel's persistent parent array (CuBIE's "persistent" location) by
default: every call still runs inside the simulator's
``swapped_cuda_module``, which swaps the module's ``cuda`` global (and,
where the race is fixed, takes the module's lock twice), but reads no
attribute of ``cuda``, so a simulator with the race times every launch
instead of losing some to the race's AttributeError. ``--location local``
times ``cuda.local.array`` as the race tests do.

It prints one JSON line, ``{"launch_seconds": {...}}``: the launches'
``n``, ``median``, ``p95`` and ``max`` in seconds, ``samples`` in launch
order, and ``past_limit``, the launches that ran past ``--limit``. A launch
past the limit is recorded with the limit as its sample (a lower bound)
and its index in ``past_limit_launches``; it is never dropped. Launches that
failed with the race's AttributeError are counted in ``race_errors``, not
timed.

A simulated launch cannot be interrupted from inside its process: this
process imports numba and builds the kernel once, and each launch runs in
a fork of it (POSIX ``os.fork``); a fork past the limit is killed there
and the next launch starts at once from the same built kernel. A new
launch starts only while the rest of ``--budget`` can hold it to its
limit, so the whole run ends within the budget (and says when the budget,
not ``--launches``, ended it). ``--stack-file PATH`` writes the stacks of
all threads of the first launch that passes the limit, as evidence of
where the time goes. ``--worker`` serves launches one at a time on stdin
(``measure_launch.LaunchServer``); ``launch_plugin`` times them in a pytest
process after its tests.
"""
import argparse
import gc
import json
import os
import select
import signal
import statistics
import sys
import threading
import time

# The MWE's factories: the kernel timed is the race tests' own.
MWE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "mwe")
# A worker's launch is killed this long after the limit: a launch that ends
# in between is still past the limit, but its stacks get written first.
KILL_GRACE = 2.0
RACE_SIGNATURE = "cuda' has no attribute"
# Python's own switch interval: launches are timed at natural settings.
DEFAULT_SWITCH_INTERVAL = 0.005


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=20,
                        help="launches to time (default 20); with "
                             "--reference-median, the fewest to time")
    parser.add_argument("--max-launches", type=int, default=None,
                        help="with --reference-median: launches to time at most "
                             "while the rule (see sequential_decision) is "
                             "undecided (default: --launches)")
    parser.add_argument("--reference-median", type=float, default=None,
                        help="the median launch of the simulators to compare "
                             "with (those with the race, same Python), s")
    parser.add_argument("--reference-p95", type=float, default=None,
                        help="their 95th percentile, s")
    parser.add_argument("--limit", type=float, default=30.0,
                        help="seconds after which a launch counts as past the "
                             "limit (default 30)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds for the whole run, worker start-up "
                             "included (default 120)")
    parser.add_argument("--threads-per-block", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--device-calls", type=int, default=1000,
                        help="device-function calls per thread per launch "
                             "(default 1000)")
    parser.add_argument("--buffer-size", type=int, default=4)
    parser.add_argument("--location", choices=("persistent", "local"),
                        default="persistent",
                        help="where the allocator's buffer lives (default "
                             "persistent: a slice of the kernel's array; "
                             "local: cuda.local.array, which the race hits)")
    parser.add_argument("--stack-file", default=None,
                        help="write the threads' stacks of the first launch "
                             "past the limit to this file")
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("launches", "threads_per_block", "blocks", "device_calls",
                 "buffer_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.limit > 0:
        parser.error("--limit must be positive")
    if args.max_launches is None:
        args.max_launches = args.launches
    if args.max_launches < args.launches:
        parser.error("--max-launches must be at least --launches")
    if (args.reference_median is None) != (args.reference_p95 is None):
        parser.error("--reference-median and --reference-p95 go together")
    if args.budget < args.limit + KILL_GRACE:
        parser.error(f"--budget must hold at least one launch to its limit: "
                     f"at least --limit + {KILL_GRACE:g} s")
    if args.stack_file and not args.worker:
        try:
            open(args.stack_file, "w").close()
        except OSError as error:
            parser.error(f"--stack-file: cannot write {args.stack_file} "
                         f"({error.strerror})")
    return args


def workload_settings(args):
    """The knobs of the timed kernel, as recorded beside the times."""
    return {"launches": args.launches,
            "threads_per_block": args.threads_per_block,
            "blocks": args.blocks, "device_calls": args.device_calls,
            "buffer_size": args.buffer_size, "location": args.location,
            "switch_interval": sys.getswitchinterval(),
            "cudasim": os.environ.get("NUMBA_ENABLE_CUDASIM", "0")}


# --- The worker: one process that runs launches when told to. ---

class Workload:
    """The timed kernel, built in this process: ``launch()`` runs it once
    and returns ("done", seconds), ("race", seconds, message) or ("error",
    message)."""

    def __init__(self, args):
        sys.path.insert(0, MWE)
        import numpy as np
        from numba import cuda

        from allocator_factory import BufferAllocatorFactory
        from kernel_factory import KernelFactory

        self.cuda = cuda
        self.args = args
        self.kernel = KernelFactory(
            BufferAllocatorFactory(args.buffer_size, location=args.location),
            args.device_calls).build()
        self.grid_threads = args.threads_per_block * args.blocks
        self.output = np.zeros(self.grid_threads, dtype=np.float32)

    def available(self):
        return self.cuda.is_available()

    def warm_up(self):
        # Compiles on a GPU; in the simulator every thread returns at once.
        self.kernel[self.args.blocks, self.args.threads_per_block](
            self.output, 0)
        self.cuda.synchronize()

    def launch(self):
        args, output = self.args, self.output
        output[:] = 0
        started = time.perf_counter()
        try:
            self.kernel[args.blocks, args.threads_per_block](
                output, self.grid_threads)
            self.cuda.synchronize()
        except AttributeError as error:
            seconds = time.perf_counter() - started
            if RACE_SIGNATURE not in str(error):
                raise
            join_block_threads()
            return "race", seconds, " ".join(str(error).split())
        seconds = time.perf_counter() - started
        if not (output == 1).all():
            return "error", (f"wrong output after {seconds:.3f} s: "
                             f"{int((output == 1).sum())} of "
                             f"{self.grid_threads} threads wrote 1")
        return "done", seconds


def thread_stacks():
    """Every thread's stack, most recent call first, as faulthandler
    writes them. From the frames alone: no source line is read, so the
    thread that asks never waits on a file."""
    blocks = []
    for ident, frame in sys._current_frames().items():
        lines = []
        while frame is not None:
            lines.append(f'  File "{frame.f_code.co_filename}", line '
                         f'{frame.f_lineno} in {frame.f_code.co_name}')
            frame = frame.f_back
        blocks.append(f"Thread 0x{ident:016x} (most recent call first):\n"
                      + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def run_worker(args):
    """The launch server (``measure_launch.LaunchServer``): the kernel
    built once, then one launch in a fork of this process for each "go"
    (or "go LIMIT") on stdin, its outcome one line on stdout."""
    def say(*words):
        print(*words, flush=True)

    workload = Workload(args)
    if not workload.available():
        say("error", NO_GPU)
        return
    workload.warm_up()
    ready_to_fork()
    # Appended to: one stack is evidence enough, so only while it is empty.
    stack_file = open(args.stack_file, "a") if args.stack_file else None
    say("ready")
    for command in sys.stdin:
        words = command.split()
        if not words or words[0] != "go":
            break
        limit = float(words[1]) if len(words) > 1 else args.limit
        armed = args.stack_file if stack_file and not os.fstat(
            stack_file.fileno()).st_size else None
        kind, seconds, detail = launch_in_fork(workload, limit, armed)
        if kind == "error":
            say("error", detail)
            return
        say(kind, f"{seconds:.6f}", *([detail] if detail else []))


# --- Forks of this process: numba imported and the kernel built once. ---

NO_GPU = ("no CUDA GPU: NUMBA_ENABLE_CUDASIM is not 1 and no CUDA device "
          "was found")


def measure(args, in_process=False):
    """The launches, each in a fork of this process (``os.fork``), under
    the sequential rule, at Python's default switch interval; returns the
    launch_seconds record. ``in_process`` says that this process is the
    suite's own (the pytest plugin), for the record."""
    clock = time.monotonic()
    saved = sys.getswitchinterval()
    samples, past, race_errors, forks, error = [], [], 0, 0, None
    stopped = "launches"
    stack_file = args.stack_file
    try:
        workload = Workload(args)
        if not workload.available():
            error = NO_GPU
        else:
            workload.warm_up()
            sys.setswitchinterval(DEFAULT_SWITCH_INTERVAL)
            ready_to_fork()
        while error is None and sequential_decision(samples, args) is None:
            if args.budget - (time.monotonic() - clock) < args.limit + \
                    (KILL_GRACE if stack_file else 0):
                stopped = "budget"
                break
            if race_errors > 10 * args.max_launches:
                error = (f"{race_errors} launches failed with the race; too "
                         f"few finished to time")
                break
            kind, seconds, detail = launch_in_fork(workload, args.limit,
                                                   stack_file)
            forks += 1
            if stack_file and os.path.getsize(stack_file):
                stack_file = None  # one stack is evidence enough
            if kind == "race":
                race_errors += 1
            elif kind in ("done", "past"):
                if kind == "past" or seconds >= args.limit:
                    past.append(len(samples))
                samples.append(min(seconds, args.limit))
            else:
                error = detail
    except Exception as failure:  # an import or build error: say so
        error = f"{type(failure).__name__}: {failure}"[:300]
    finally:
        sys.setswitchinterval(saved)
        gc.unfreeze()
    record = summarize(samples, past, args.limit)
    record.update(limit=args.limit, budget=args.budget,
                  workload={**workload_settings(args),
                            "switch_interval": DEFAULT_SWITCH_INTERVAL},
                  race_errors=race_errors, processes=forks, mode="fork",
                  in_process=in_process,
                  stopped="error" if error else stopped,
                  seconds=round(time.monotonic() - clock, 3),
                  **rule_fields(samples, args))
    if error:
        record["error"] = error
    return record


def ready_to_fork():
    """Before the first fork: the simulator's threads joined (a fork copies
    only the thread that forks), and what exists now frozen out of the
    collector, which would otherwise write to every page of it in each fork
    (copy on write) and bill the launch for copying them. Undone by
    ``gc.unfreeze()``."""
    join_block_threads()
    gc.collect()
    gc.freeze()


def launch_in_fork(workload, limit, stack_file=None):
    """One launch in a fork of this process, killed at ``limit`` (or, while
    ``stack_file`` is empty, once the fork has written its threads' stacks
    there, at most ``KILL_GRACE`` later). Returns (kind, seconds, detail):
    "done", "race", "past" (killed at the limit) or "error"."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the fork: one launch, its outcome down the pipe
        line = "error the fork ended without an outcome"
        try:
            os.close(read_end)
            if stack_file:
                timer = threading.Timer(limit, write_stacks, (stack_file,))
                timer.daemon = True
                timer.start()
            kind, *rest = workload.launch()
            if kind != "error":  # ("done", seconds) or ("race", s, message)
                rest[0] = f"{rest[0]:.6f}"
            line = " ".join([kind, *rest])
        except BaseException as failure:
            line = f"error {type(failure).__name__}: {failure}"
        finally:
            os.write(write_end, line[:3000].encode(errors="replace"))
            os._exit(0)
    os.close(write_end)
    try:
        wait = limit + (KILL_GRACE if stack_file else 0.0)
        ready = select.select([read_end], [], [], wait)[0]
        text = os.read(read_end, 4096).decode(errors="replace") if ready \
            else ""
        seconds = time.perf_counter() - started
        if not text:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.waitpid(pid, 0)
        os.close(read_end)
    kind, _, rest = text.partition(" ")
    if kind in ("done", "race"):
        taken, _, message = rest.partition(" ")
        return kind, float(taken), message
    if kind == "error":
        return "error", seconds, rest
    return "past", limit, ""


def write_stacks(path):
    """Every thread's stacks into ``path`` (in a fork past its limit).
    Once this thread holds the GIL it keeps it until the stacks are taken:
    among dozens of simulated threads, each taking the GIL in turn at the
    launch's switch interval, it would otherwise wait a round for each
    slice of its work, and on a loaded machine the fork is killed before
    it is done (the launch is past its limit: its timing no longer
    counts)."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        text = thread_stacks()
    finally:
        sys.setswitchinterval(saved)
    with open(path, "a") as stream:
        stream.write(text)


def join_block_threads(timeout=5.0):
    """After a failed launch the simulator's other threads run on; let them
    finish before the next launch is timed."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if type(thread).__name__ == "BlockThread":
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


# --- How many launches: the sequential rule. ---

# How far above the reference's 95th percentile a launch must be to count
# as slower, and how far above its median the median of launches alike
# with it may lie (the medians of simulators with the race on one Python
# differ by about a tenth).
SLOWER_FACTOR = 1.5
ALIKE_FACTOR = 1.25
# Launches past the reference's 95th percentile itself that a row still
# called alike may have: a launch drawn like the reference's is past it one
# time in twenty, so two of three are about one time in 140. Not a reason
# to call a row slower: a whole machine slowed by its host (seen here at
# 1.5-1.7x within one run) puts every row past a reference taken before,
# and only launches taken in turn with the reference's (the bisect on
# time) can tell that from a slower simulator.
PAST_P95_ALIKE = 1


def sequential_decision(samples, args):
    """None while more launches are wanted, else why they stop.

    Without a reference: after ``--launches`` launches ("count"). With one
    (``--reference-median`` and ``--reference-p95`` of the launch times of
    simulators with the race on the same Python), from ``--launches``
    launches on and at most ``--max-launches``: "slower" once two launches
    took more than 1.5 times the reference's 95th percentile (a launch
    drawn like the reference's is past its 95th percentile one time in
    twenty, and past 1.5 times it rarer still: two such are rare), or
    once one ran past the limit where the limit is at least ten times that
    percentile; "alike" while no launch took 1.5 times the percentile, at
    most one took more than it, and their median is within 1.25 times the
    reference's median (a fixed simulator beside another session stalls
    less, and its launches then land just past the reference's bulk, not
    far past it); "undecided" at the most."""
    n = len(samples)
    if n < args.launches:
        return None
    if args.reference_median is None:
        return "count"
    p95, median = args.reference_p95, args.reference_median
    slower = sum(1 for s in samples if s > SLOWER_FACTOR * p95)
    past_p95 = sum(1 for s in samples if s > p95)
    past_limit = sum(1 for s in samples if s >= args.limit)
    if slower >= 2 or (past_limit and args.limit >= 10 * p95):
        return "slower"
    if not slower and past_p95 <= PAST_P95_ALIKE and \
            statistics.median(samples) <= ALIKE_FACTOR * median:
        return "alike"
    return "undecided" if n >= args.max_launches else None


def rule_fields(samples, args):
    """The rule's decision and its inputs, for the record."""
    return {"decision": sequential_decision(samples, args) or "stopped",
            "rule": {"launches": args.launches,
                     "max_launches": args.max_launches,
                     "reference_median": args.reference_median,
                     "reference_p95": args.reference_p95,
                     "slower_factor": SLOWER_FACTOR,
                     "alike_factor": ALIKE_FACTOR,
                     "past_p95_alike": PAST_P95_ALIKE}}


def summarize(samples, past_limit_launches, limit):
    n = len(samples)

    def quantile(q):  # linear interpolation between order statistics
        if n < 2:
            return round(samples[0], 6) if n else None
        if q == 0.5:
            return round(statistics.median(samples), 6)
        return round(statistics.quantiles(samples, n=100, method="inclusive")[
            round(q * 100) - 1], 6)

    return {"n": n, "median": quantile(0.5), "p95": quantile(0.95),
            "max": round(max(samples), 6) if n else None,
            "past_limit": len(past_limit_launches),
            "past_limit_launches": past_limit_launches,
            "samples": [round(s, 6) for s in samples]}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    record = measure(args)
    print(json.dumps({"launch_seconds": record}), flush=True)
    return 1 if "error" in record else 0


if __name__ == "__main__":
    sys.exit(main())
