"""Launch time of a CuBIE-like kernel, at natural settings.

Run with::

    NUMBA_ENABLE_CUDASIM=1 python launch_time.py [--launches 20] [--limit 30] [--budget 120]

Each thread of the block calls a device function from another module
(``allocator_factory.py``) many times, at Python's default switch interval,
as a CuBIE kernel does. This is not one of the race tests (pytest does not
collect this file) and it changes nothing they measure.

It prints one JSON line, ``{"launch_seconds": {...}}``: the launches'
``n``, ``median``, ``p95`` and ``max`` in seconds, ``samples`` in launch
order, and ``past_limit``, the launches that ran past ``--limit``. A launch
past the limit is recorded with the limit as its sample (a lower bound)
and its index in ``past_limit_launches``; it is never dropped. Launches that
failed with the race's AttributeError (simulators with the race can) are
counted in ``race_errors``, not timed.

A simulated launch cannot be interrupted from inside its process, so each
launch runs in a worker process that this one drives: a worker whose launch
passes the limit is killed and a fresh one takes the next launch. A new
launch starts only while the rest of ``--budget`` can hold it to its limit,
so the whole run ends within the budget (and says when the budget, not
``--launches``, ended it). ``--stack-file PATH`` writes the stacks of all
threads of the first launch that passes the limit (``faulthandler``), as
evidence of where the time goes; faulthandler reads running threads'
stacks without the GIL and can crash the worker while it writes them,
which then counts as the launch past the limit that it was.
"""
import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# A worker's launch is killed this long after the limit: a launch that ends
# in between is still past the limit, but its stacks get written first.
KILL_GRACE = 2.0
# Time allowed for a worker to import numba and build the kernel.
STARTUP_LIMIT = 120.0
RACE_SIGNATURE = "cuda' has no attribute"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=20,
                        help="launches to time (default 20)")
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
    parser.add_argument("--launches-per-process", type=int, default=5,
                        help="launches one worker process runs before a fresh "
                             "one takes over (default 5): launch times vary "
                             "between processes as well as within one")
    parser.add_argument("--stack-file", default=None,
                        help="write the threads' stacks of the first launch "
                             "past the limit to this file")
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("launches", "threads_per_block", "blocks", "device_calls",
                 "buffer_size", "launches_per_process"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.limit > 0:
        parser.error("--limit must be positive")
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
            "buffer_size": args.buffer_size,
            "launches_per_process": args.launches_per_process,
            "switch_interval": sys.getswitchinterval(),
            "cudasim": os.environ.get("NUMBA_ENABLE_CUDASIM", "0")}


# --- The worker: one process that runs launches when told to. ---

def run_worker(args):
    sys.path.insert(0, HERE)
    import faulthandler
    import numpy as np
    from numba import cuda

    from allocator_factory import BufferAllocatorFactory
    from kernel_factory import KernelFactory

    def say(*words):
        print(*words, flush=True)

    if not cuda.is_available():
        say("error", "no CUDA GPU: NUMBA_ENABLE_CUDASIM is not 1 and no CUDA "
                     "device was found")
        return
    kernel = KernelFactory(BufferAllocatorFactory(args.buffer_size),
                           args.device_calls).build()
    grid_threads = args.threads_per_block * args.blocks
    output = np.zeros(grid_threads, dtype=np.float32)
    # Compiles on a GPU; in the simulator every thread returns at once.
    kernel[args.blocks, args.threads_per_block](output, 0)
    cuda.synchronize()
    # Appended to: the driver empties it once and stops passing it on
    # after the first stack.
    stack_file = open(args.stack_file, "a") if args.stack_file else None
    say("ready")
    for command in sys.stdin:
        if command.strip() != "go":
            break
        output[:] = 0
        # One stack is evidence enough: arm only while the file is empty.
        armed = bool(stack_file) and not os.fstat(stack_file.fileno()).st_size
        if armed:
            faulthandler.dump_traceback_later(args.limit, file=stack_file)
        started = time.perf_counter()
        try:
            kernel[args.blocks, args.threads_per_block](output, grid_threads)
            cuda.synchronize()
        except AttributeError as error:
            seconds = time.perf_counter() - started
            if RACE_SIGNATURE not in str(error):
                raise
            join_block_threads()
            say("race", f"{seconds:.6f}", " ".join(str(error).split()))
            continue
        finally:
            if armed:
                faulthandler.cancel_dump_traceback_later()
        seconds = time.perf_counter() - started
        if not (output == 1).all():
            say("error", f"wrong output after {seconds:.3f} s: "
                         f"{int((output == 1).sum())} of {grid_threads} "
                         f"threads wrote 1")
            return
        say("done", f"{seconds:.6f}")


def join_block_threads(timeout=5.0):
    """After a failed launch the simulator's other threads run on; let them
    finish before the next launch is timed."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if type(thread).__name__ == "BlockThread":
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


# --- The driver: workers, the limit, the budget, the summary. ---

class Worker:
    """A worker process and a thread that queues its output lines."""

    def __init__(self, args, stack_file):
        command = [sys.executable, os.path.abspath(__file__), "--worker",
                   "--limit", str(args.limit),
                   "--threads-per-block", str(args.threads_per_block),
                   "--blocks", str(args.blocks),
                   "--device-calls", str(args.device_calls),
                   "--buffer-size", str(args.buffer_size)]
        if stack_file:
            command += ["--stack-file", stack_file]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, args=(self.process.stdout,
                                                  self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr,
                                                  self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _read(stream, put):
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def next_line(self, timeout):
        """The worker's next line, "" on timeout, None once it has exited."""
        try:
            return self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return ""

    def send(self, word):
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def failure(self):
        self.process.wait()
        last = next((line for line in reversed(self.stderr)
                     if line and line.strip()), "no output")
        return f"worker exited {self.process.returncode}: {last.strip()}"

    def stop(self, kill=False):
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                try:
                    self.send("stop")
                    self.process.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.process.kill()
        self.process.wait()


def measure(args):
    """Run the launches; returns the launch_seconds record."""
    clock = time.monotonic()
    samples, past_limit_launches = [], []
    race_errors, processes, error = 0, 0, None
    stopped = "launches"
    worker, in_worker = None, 0
    stack_file = args.stack_file  # emptied by parse_args

    def left():
        return args.budget - (time.monotonic() - clock)

    while len(samples) < args.launches:
        if left() < args.limit + KILL_GRACE:
            stopped = "budget"
            break
        if worker is None:
            worker, in_worker = Worker(args, stack_file), 0
            processes += 1
            line = worker.next_line(min(STARTUP_LIMIT, left()))
            if line != "ready":
                error = (line.split(" ", 1)[1] if line and line.startswith(
                    "error ") else "worker did not start in time" if line == ""
                    else worker.failure())
                worker.stop(kill=True)
                worker = None
                break
            continue  # the start-up took time: check the budget again
        worker.send("go")
        in_worker += 1
        sent = time.monotonic()
        line = worker.next_line(args.limit + KILL_GRACE)
        kind, _, rest = (line or "").partition(" ")
        if line is None and stack_file and \
                time.monotonic() - sent >= args.limit:
            # faulthandler reads the other threads' stacks without the GIL,
            # which can crash the worker; it did so past the limit.
            worker.process.wait()
            line = ""
        if kind == "done":
            samples.append(min(float(rest), args.limit))
            if float(rest) >= args.limit:
                past_limit_launches.append(len(samples) - 1)
        elif kind == "race":
            race_errors += 1
        elif line == "":  # past the limit, still running (or crashed)
            worker.stop(kill=True)
            worker = None
            samples.append(args.limit)
            past_limit_launches.append(len(samples) - 1)
        if stack_file and os.path.getsize(stack_file):
            stack_file = None  # one stack is evidence enough
        if worker is None:
            continue
        if kind not in ("done", "race"):
            error = rest if kind == "error" else worker.failure()
            worker.stop(kill=True)
            worker = None
            break
        if in_worker >= args.launches_per_process:
            worker.stop()
            worker = None
        if race_errors > 10 * args.launches:
            error = f"{race_errors} launches failed with the race; too few " \
                    f"finished to time"
            break
    if worker is not None:
        worker.stop()
    record = summarize(samples, past_limit_launches, args.limit)
    record.update(limit=args.limit, budget=args.budget,
                  workload=workload_settings(args), race_errors=race_errors,
                  processes=processes, stopped="error" if error else stopped,
                  seconds=round(time.monotonic() - clock, 3))
    if error:
        record["error"] = error
    return record


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
