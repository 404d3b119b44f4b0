"""The launch price of the installed simulator: does this release pay the
fix's lock? Workload, rule and constants in one place. It runs inside the
environment under test, so it imports no other racematrix module and nothing
but the standard library (numba and numpy come from the environment).

Run with::

    NUMBA_ENABLE_CUDASIM=1 python racematrix/launch_time.py [--pairs 3]

The MWE's kernel (``mwe/``: each thread calls a device function of another
module, whose buffer is a slice of the kernel's persistent array, so no
launch is lost to the race) is launched in pairs: once through the
installed simulator's ``swapped_cuda_module`` and once through a copy of
numba-cuda 0.24.0's (no lock), put in at run time, each side first every
other pair. The same process, kernel and load time both, so a row needs
no other row: a release whose swap is the unlocked one reads about 1.0x
by construction; one with the fix's lock pays for it in lock convoys. The
convoy grows as Python's switch interval shrinks (bench's ``workload``
part measured where: ``SWITCH_INTERVAL``), and forms only where a core is
free for the woken waiter (the record's ``idle_cpus`` says how many were).

It prints one JSON line, ``{"launch_seconds": {...}}``: the installed
side's ``n``, ``median``, ``p95``, ``max`` and ``samples`` (seconds), the
unlocked side's under ``unlocked``, ``ratio`` (median over median) and
``decision`` (``decide``).

``--worker`` serves plain launches one at a time on stdin, each in a fork
(``measure_launch.LaunchServer``, for the fixes' launches taken in turn).
"""
import argparse
import contextlib
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
RACE_SIGNATURE = "cuda' has no attribute"
# Python's own switch interval, restored after the pairs.
DEFAULT_SWITCH_INTERVAL = 0.005

# --- The row's workload and rule: chosen by `nox -s bench -- --parts
# workload` (results/bench.md, "The launch workload"). ---
PAIRS = 3            # launches per side at least (a row needs >= 3)
MAX_PAIRS = 8        # at most, while undecided; all of them before other code is alike
DEVICE_CALLS = 100   # device-function calls per thread per launch
THREADS = 32
SWITCH_INTERVAL = 1e-4
SLOWER_RATIO = 2.0   # installed median / unlocked median at least: slower
ALIKE_RATIO = 1.5    # below: alike; in between: more pairs, then undecided
# The convoy needs a free core for the woken waiter: pinned to one core, or
# beside one busy process on two, a locked release reads ~1.0x. Below this
# many idle CPUs (on average during the pairs) other code is not alike.
MIN_IDLE_CPUS = 0.5


def decide(ratio, idle_cpus=None, unlocked_code=False, worst_pair=None,
           full=True):
    """The one rule, for a matrix row and a bisect probe alike: "slower"
    (the release pays the lock's price), "alike" (its swap costs what the
    unlocked one does) or "undecided".

    A release whose swap runs the unlocked swap's own code (numba's built-in
    simulator, numba-cuda before the fix) costs the same by construction:
    alike, unless its launches say otherwise (then undecided: the
    measurement, not the release, is in question). Any other swap is
    placed by its launches: slower at ``SLOWER_RATIO`` (median over
    median). The lock's convoy is sporadic and needs a free core, so
    alike is said of other code only after every pair was taken
    (``full``), none of them ``SLOWER_RATIO`` apart (``worst_pair``), the
    medians under ``ALIKE_RATIO`` and ``MIN_IDLE_CPUS`` idle."""
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
def unlocked_swap(fn, fake_cuda_module):  # numba-cuda 0.24.0's, verbatim
    from numba import cuda

    fn_globs = fn.__globals__
    orig = dict((k, v) for k, v in fn_globs.items() if v is cuda)
    repl = dict((k, fake_cuda_module) for k, v in orig.items())
    fn_globs.update(repl)
    try:
        yield
    finally:
        fn_globs.update(orig)


def swap_code(swap):
    """The swap's body, its comments, blank lines and indentation taken out:
    equal for two swaps that run the same code."""
    import inspect
    lines = inspect.getsource(swap).splitlines()
    body = lines[next(i for i, line in enumerate(lines)
                      if line.lstrip().startswith("def ")) + 1:]
    return [line.split("#")[0].strip() for line in body
            if line.split("#")[0].strip()]


def idle_cpu_seconds():
    """CPU seconds idle so far, all CPUs together (Linux /proc/stat), or
    None elsewhere."""
    try:
        with open("/proc/stat") as stream:
            fields = stream.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def idle_cpus(idle_before, clock):
    """CPUs idle on average since ``clock`` (time.monotonic), or None."""
    idle_now = idle_cpu_seconds()
    if idle_before is None or idle_now is None:
        return None
    return round((idle_now - idle_before) /
                 max(time.monotonic() - clock, 1e-3), 2)


def price(args):
    """The pairs of launches and their decision: the launch_seconds
    record. Never raises: a failure is the record's ``error``."""
    clock = time.monotonic()
    idle_before = idle_cpu_seconds()
    saved = sys.getswitchinterval()
    sides = {"installed": [], "unlocked": []}
    error, simulator, installed, same = None, None, None, None
    try:
        from numba import config
        if not config.ENABLE_CUDASIM:
            raise RuntimeError("the price is the simulator's: "
                               "NUMBA_ENABLE_CUDASIM is not 1")
        from numba.cuda.simulator import kernel as simulator
        installed = simulator.swapped_cuda_module
        swaps = {"installed": installed, "unlocked": unlocked_swap}
        workload = Workload(args)
        simulator.swapped_cuda_module = unlocked_swap
        workload.warm_up()
        sys.setswitchinterval(args.switch_interval)
        same = swap_code(installed) == swap_code(unlocked_swap)
        pair = 0
        # More pairs while undecided: a convoy may form once a core frees.
        while pair < args.pairs or (pair < args.max_pairs and decide(
                ratio_of(sides), idle_cpus(idle_before, clock), same,
                worst_pair(sides), False) == "undecided"):
            for name in sorted(swaps, reverse=pair % 2 == 1):
                simulator.swapped_cuda_module = swaps[name]
                kind, *rest = workload.launch()
                if kind != "done":
                    raise RuntimeError(f"a launch ended {kind}: {rest[-1]}")
                sides[name].append(rest[0])
            pair += 1
    except Exception as failure:  # an import, build or launch error
        error = f"{type(failure).__name__}: {failure}"[:300]
    finally:
        sys.setswitchinterval(saved)
        if simulator is not None:
            simulator.swapped_cuda_module = installed
    seconds = time.monotonic() - clock
    idle = idle_cpus(idle_before, clock)
    ratio = ratio_of(sides)
    record = summarize(sides["installed"])
    record.update(
        unlocked=summarize(sides["unlocked"]),
        ratio=None if ratio is None else round(ratio, 3),
        unlocked_code=same,
        worst_pair=worst_pair(sides),
        decision="error" if error else decide(
            ratio, idle, bool(same), worst_pair(sides),
            len(sides["installed"]) >= args.max_pairs),
        rule={"slower_ratio": SLOWER_RATIO, "alike_ratio": ALIKE_RATIO,
              "min_idle_cpus": MIN_IDLE_CPUS, "pairs": args.pairs,
              "max_pairs": args.max_pairs},
        workload=workload_settings(args),
        idle_cpus=idle,
        seconds=round(seconds, 3))
    if error:
        record["error"] = error
    return record


def worst_pair(sides):
    """The largest installed / unlocked ratio of one pair, or None."""
    pairs = list(zip(sides["installed"], sides["unlocked"]))
    return round(max(i / u for i, u in pairs), 3) if pairs else None


def ratio_of(sides):
    if not sides["installed"] or not sides["unlocked"]:
        return None
    return statistics.median(sides["installed"]) / \
        statistics.median(sides["unlocked"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=PAIRS,
                        help=f"pairs of launches at least (default {PAIRS})")
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS,
                        help=f"pairs at most while undecided (default "
                             f"{MAX_PAIRS})")
    parser.add_argument("--switch-interval", type=float,
                        default=SWITCH_INTERVAL,
                        help=f"sys.setswitchinterval during the pairs "
                             f"(default {SWITCH_INTERVAL:g})")
    parser.add_argument("--threads-per-block", type=int, default=THREADS)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--device-calls", type=int, default=DEVICE_CALLS,
                        help=f"device-function calls per thread per launch "
                             f"(default {DEVICE_CALLS})")
    parser.add_argument("--buffer-size", type=int, default=4)
    parser.add_argument("--location", choices=("persistent", "local"),
                        default="persistent",
                        help="where the allocator's buffer lives (default "
                             "persistent: a slice of the kernel's array; "
                             "local: cuda.local.array, which the race hits)")
    parser.add_argument("--limit", type=float, default=30.0,
                        help="--worker: seconds after which a launch is "
                             "killed and counted as past the limit")
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("pairs", "threads_per_block", "blocks", "device_calls",
                 "buffer_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_pairs < args.pairs:
        parser.error("--max-pairs must be at least --pairs")
    if not args.limit > 0 or not args.switch_interval > 0:
        parser.error("--limit and --switch-interval must be positive")
    return args


def workload_settings(args):
    """The knobs of the timed kernel, as recorded beside the times."""
    return {"threads_per_block": args.threads_per_block,
            "blocks": args.blocks, "device_calls": args.device_calls,
            "buffer_size": args.buffer_size, "location": args.location,
            "switch_interval": args.switch_interval,
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
    say("ready")
    for command in sys.stdin:
        words = command.split()
        if not words or words[0] != "go":
            break
        limit = float(words[1]) if len(words) > 1 else args.limit
        kind, seconds, detail = launch_in_fork(workload, limit)
        if kind == "error":
            say("error", detail)
            return
        say(kind, f"{seconds:.6f}", *([detail] if detail else []))


# --- Forks of this process: numba imported and the kernel built once. ---

NO_GPU = ("no CUDA GPU: NUMBA_ENABLE_CUDASIM is not 1 and no CUDA device "
          "was found")


def ready_to_fork():
    """Before the first fork: the simulator's threads joined (a fork copies
    only the thread that forks), and what exists now frozen out of the
    collector, which would otherwise write to every page of it in each fork
    (copy on write) and bill the launch for copying them. Undone by
    ``gc.unfreeze()``."""
    join_block_threads()
    gc.collect()
    gc.freeze()


def launch_in_fork(workload, limit):
    """One launch in a fork of this process, killed at ``limit``. Returns
    (kind, seconds, detail): "done", "race", "past" (killed at the limit)
    or "error"."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the fork: one launch, its outcome down the pipe
        line = "error the fork ended without an outcome"
        try:
            os.close(read_end)
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
        ready = select.select([read_end], [], [], limit)[0]
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


def join_block_threads(timeout=5.0):
    """After a failed launch the simulator's other threads run on; let them
    finish before the next launch is timed."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if type(thread).__name__ == "BlockThread":
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def summarize(samples):
    """``n``, ``median``, ``p95``, ``max`` and ``samples`` of launch times."""
    n = len(samples)

    def quantile(q):  # linear interpolation between order statistics
        if n < 2:
            return round(samples[0], 6) if n else None
        return round(statistics.quantiles(samples, n=100, method="inclusive")[
            round(q * 100) - 1], 6)

    return {"n": n, "median": round(statistics.median(samples), 6) if n
            else None, "p95": quantile(0.95),
            "max": round(max(samples), 6) if n else None,
            "samples": [round(s, 6) for s in samples]}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    record = price(args)
    print(json.dumps({"launch_seconds": record}), flush=True)
    return 1 if "error" in record else 0


if __name__ == "__main__":
    sys.exit(main())
