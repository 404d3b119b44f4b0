"""Launch time: the MWE's timing workload run in one environment, its
summary, a rank test that tells two launch-time distributions apart, and a
bisect on time.

The rule that compares two releases compares whole distributions, never
single launches, with two one-sided tests: the Mann-Whitney U test
(Wilcoxon rank-sum) on the launch times, for a shift of the bulk, and
Fisher's exact test on the share of stalls (launches longer than a few
times the fast end's median), for the tail: a fixed simulator's launches
are a mixture of quick ones and lock-convoy stalls of seconds, and at some
loads only the stalls differ. Both need no assumption about the shape of
the distribution, and both stay right when launches past the limit are
recorded at the limit (a censored value outranks, and counts as a stall
beyond, every finished launch, as it should when both releases share the
limit). Launches are added in batches until the rule decides or a cap is
reached; each look tests at ``alpha`` divided by the number of looks the
cap allows, and each of the two tests at half of that (Bonferroni), so
looking again does not inflate the error rate.

Both tests are written out below (Mann-Whitney: exact null distribution
without ties, normal approximation with tie and continuity correction
otherwise, as SciPy's ``mannwhitneyu`` does; Fisher: the hypergeometric
tail) because the bisect runs in nox's own interpreter, which has only
nox, uv and packaging; the tests check both against SciPy where SciPy is
installed.
"""
import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import results
from .bisect import find_ends, narrow, probe_limit, span_text
from .envspec import ConfigError, EnvSpec, parse_python, parse_spec
from .interpreters import expose_interpreters, missing_interpreters
from .provenance import machine_info
from .runner import (MWE, BadInput, ProbeEnvironment, install,
                     read_environment, run_streaming)

WORKLOAD = MWE / "launch_time.py"
# One matrix row's workload: bounded by the budget whatever the simulator.
LAUNCHES = 10
LIMIT = 20.0
BUDGET = 60.0
RESULT_PREFIX = '{"launch_seconds":'


# --- Running the workload. ---

def workload_command(launches=LAUNCHES, limit=LIMIT, budget=BUDGET,
                     stack_file=None, workload_args=()):
    command = ["python", str(WORKLOAD), "--launches", str(launches),
               "--limit", str(limit), "--budget", str(budget),
               *workload_args]
    if stack_file:
        command += ["--stack-file", str(stack_file)]
    return command


def run_launch_time(env, sim, *, launches=LAUNCHES, limit=LIMIT,
                    budget=BUDGET, stack_file=None, workload_args=(),
                    echo=False):
    """Run ``mwe/launch_time.py`` in ``env`` (a nox Session or a
    ``runner.ProbeEnvironment``) and return its ``launch_seconds`` record.

    The workload bounds its own time by ``budget`` (plus the start of its
    worker processes). When it prints no record, the record has ``n`` 0 and
    an ``error`` naming the last line it printed."""
    returncode, tail = run_streaming(
        env, workload_command(launches, limit, budget, stack_file,
                              workload_args),
        {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, echo)
    record = parse_workload_output(tail)
    if record is None:
        last = next((line for line in reversed(tail) if line.strip()),
                    "no output")
        return empty_record(limit, budget, f"the launch-time workload exited "
                                           f"{returncode} without a result: "
                                           f"{last.strip()[:300]}")
    return record


def parse_workload_output(lines):
    """The ``launch_seconds`` record from the workload's output lines (the
    last such line), or None."""
    for line in reversed(lines):
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(line)["launch_seconds"]
            except (ValueError, KeyError):
                return None
    return None


def empty_record(limit, budget, error):
    return {**summarize_launches([], limit), "limit": limit, "budget": budget,
            "workload": {}, "samples": [], "error": error}


# --- Summary. ---

def quantile(samples, q):
    """The q-quantile by linear interpolation between order statistics
    (NumPy's default, the workload's own), None for no samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    if q == 0.5:
        return statistics.median(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[
        round(q * 100) - 1]


def summarize_launches(samples, limit):
    """``n``, ``median``, ``p95``, ``max`` and ``past_limit`` of launch
    times, where a launch past the limit was recorded at the limit."""
    return {"n": len(samples), "median": quantile(samples, 0.5),
            "p95": quantile(samples, 0.95),
            "max": max(samples) if samples else None,
            "past_limit": sum(1 for s in samples if s >= limit)}


# --- The rank test. ---

def mann_whitney_greater(x, y):
    """One-sided Mann-Whitney U test that ``x`` tends to be larger than
    ``y``. Returns (U of x, p-value). Exact without ties for small
    samples; normal approximation with tie and continuity correction
    otherwise."""
    m, n = len(x), len(y)
    if not m or not n:
        raise ValueError("the rank test needs samples on both sides")
    ranks = midranks(list(x) + list(y))
    u = sum(ranks[:m]) - m * (m + 1) / 2
    ties = len(set(x) | set(y)) < m + n
    if not ties and m * n <= EXACT_LIMIT:
        # P(U >= u) under the null; U is an integer without ties.
        counts = u_distribution(m, n)
        return u, sum(counts[int(u):]) / sum(counts)
    total = m + n
    tie_sum = sum(t ** 3 - t for t in tie_sizes(list(x) + list(y)))
    variance = m * n / 12 * ((total + 1) - tie_sum / (total * (total - 1)))
    if variance <= 0:  # every value tied: no evidence either way
        return u, 1.0
    z = (u - m * n / 2 - 0.5) / math.sqrt(variance)
    return u, 0.5 * math.erfc(z / math.sqrt(2))


EXACT_LIMIT = 2500  # m * n up to which the exact distribution is used


def midranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def tie_sizes(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return [c for c in counts.values() if c > 1]


def u_distribution(m, n):
    """How many of the C(m+n, m) orderings give U = 0, 1, ..., m*n: the
    coefficients of the Gaussian binomial coefficient [m+n choose m]."""
    # Build [m+n, m]_q as the product over i of (1 - q^(n+i)) / (1 - q^i).
    poly = [1]
    for i in range(1, m + 1):
        poly = poly + [0] * (n + i)
        for d in range(len(poly) - 1, n + i - 1, -1):  # times (1 - q^(n+i))
            poly[d] -= poly[d - n - i]
        for d in range(i, len(poly)):  # divided by (1 - q^i)
            poly[d] += poly[d - i]
    return poly[:m * n + 1]


# --- The decision rule. ---

@dataclass(frozen=True)
class TimeRule:
    """How launches are taken and compared: ``first`` launches at first,
    ``step`` more at each further look, at most ``cap``; every look tests at
    ``alpha`` / (number of looks the cap allows). Before each release is
    placed, each end gets ``step`` fresh launches, and the release is
    compared with the ends' latest ``window`` launches: launch times drift
    with the machine's load, so the ends are re-measured beside each probe
    rather than once at the start."""
    alpha: float = 0.01
    first: int = 8
    step: int = 8
    cap: int = 40
    window: int = 40
    stall_factor: float = 3.0

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 1 <= self.first <= self.cap or self.step < 1 or \
                self.window < 1 or not self.stall_factor > 1:
            raise ConfigError(f"need 1 <= first <= cap, step >= 1 and "
                              f"window >= 1 and stall_factor > 1, got "
                              f"first={self.first}, step={self.step}, "
                              f"cap={self.cap}, window={self.window}, "
                              f"stall_factor={self.stall_factor}")

    @property
    def looks(self):
        return 1 + math.ceil((self.cap - self.first) / self.step)

    @property
    def alpha_per_look(self):
        return self.alpha / self.looks

    def launches_at(self, look):
        """Launches wanted at look 0, 1, ...: first, first+step, ..., cap."""
        return min(self.first + look * self.step, self.cap)

    def describe(self):
        return (f"slower = one-sided Mann-Whitney U on launch times (launches "
                f"past the limit ranked at the limit) or one-sided Fisher "
                f"exact test on the share of stalls (launches over "
                f"{self.stall_factor:g} x the fast end's median), each at "
                f"half the look's alpha; {self.first} launches, then "
                f"{self.step} more per look up to {self.cap}; each look at "
                f"p < {self.alpha:g}/{self.looks} = {self.alpha_per_look:.4g};"
                f" each end re-measured ({self.step} launches) before each "
                f"probe, compared by its latest {self.window}")


def fisher_greater(hits, n, other_hits, other_n):
    """One-sided Fisher exact test that a share of ``hits`` in ``n`` is
    larger than ``other_hits`` in ``other_n``: P(X >= hits) for X
    hypergeometric with the margins seen."""
    total = hits + other_hits
    tail = sum(math.comb(n, k) * math.comb(other_n, total - k)
               for k in range(hits, min(n, total) + 1))
    return tail / math.comb(n + other_n, total)


def slower(x, y, stall_at):
    """p-values that launches ``x`` are slower than ``y``: by ranks (the
    bulk of the launches), and by the share of stalls, launches longer than
    ``stall_at`` seconds (the tail: a lock convoy stalls a few launches
    for seconds while the rest run as before)."""
    stalls = (sum(1 for s in x if s > stall_at),
              sum(1 for s in y if s > stall_at))
    return {"rank": mann_whitney_greater(x, y)[1],
            "stalls": fisher_greater(stalls[0], len(x), stalls[1], len(y))}


def significant(p_values, rule):
    """Either test below its share of the look's alpha (Bonferroni)."""
    return min(p_values.values()) < rule.alpha_per_look / len(p_values)


def compare_ends(old, new, rule):
    """Which way launch time moved from ``old`` to ``new`` samples:
    ("rose" | "fell" | None, p-values of rising, p-values of falling).
    A stall is a launch longer than ``rule.stall_factor`` times the median
    of the end taken as the fast one."""
    p_rose = slower(new, old, rule.stall_factor * quantile(old, 0.5))
    p_fell = slower(old, new, rule.stall_factor * quantile(new, 0.5))
    if significant(p_rose, rule) and not significant(p_fell, rule):
        return "rose", p_rose, p_fell
    if significant(p_fell, rule) and not significant(p_rose, rule):
        return "fell", p_rose, p_fell
    return None, p_rose, p_fell


def classify(samples, fast, slow, rule):
    """"slow" when ``samples`` are slower than the fast end's and not faster
    than the slow end's; "fast" the other way round; "between" when they
    differ from both ends; None when the launches so far cannot tell.
    Returns (verdict, p-values of slower than the fast end, p-values of
    faster than the slow end)."""
    stall_at = rule.stall_factor * quantile(fast, 0.5)
    p_slower = slower(samples, fast, stall_at)
    p_faster = slower(slow, samples, stall_at)
    verdict = {(True, False): "slow", (False, True): "fast",
               (True, True): "between"}.get(
        (significant(p_slower, rule), significant(p_faster, rule)))
    return verdict, p_slower, p_faster


# --- The bisect. ---

SPEEDS = ("slow", "fast")


@dataclass
class TimeProbe:
    """What timing one release found; ``verdict`` is "slow"/"fast" once
    classified, "measured" for an end, "between"/"undecided" when the rule
    could not place it, "error"/"skipped" when it could not be timed."""
    version: str
    verdict: str = "measured"
    samples: list = field(default_factory=list)
    past_limit: int = 0
    race_errors: int = 0
    reason: str = ""
    seconds: float = 0.0
    p_values: dict = field(default_factory=dict)

    @property
    def usable(self):
        return self.verdict not in ("error", "skipped") and bool(self.samples)

    def to_json(self):
        data = asdict(self)
        data.update(n=len(self.samples),
                    median=quantile(self.samples, 0.5),
                    p95=quantile(self.samples, 0.95))
        return data


@dataclass
class TimeBisectResult:
    versions: list
    tested: list
    boundary: dict | None
    summary: str
    direction: str | None
    rule: TimeRule

    @property
    def decisive_probes(self):
        return len({p.version for p in self.tested if p.verdict in SPEEDS})

    def to_json(self):
        return {"releases": self.versions,
                "tested": [p.to_json() for p in self.tested],
                "boundary": self.boundary, "summary": self.summary,
                "direction": self.direction,
                "decisive_probes": self.decisive_probes,
                "probe_limit": probe_limit(len(self.versions)),
                "rule": {**asdict(self.rule), "looks": self.rule.looks,
                         "alpha_per_look": self.rule.alpha_per_look,
                         "text": self.rule.describe()}}


def bisect_on_time(versions, measure, rule=TimeRule()):
    """Search ``versions`` (oldest first) for the adjacent pair where launch
    time jumps.

    ``measure(version, launches)`` times one release and returns a
    ``TimeProbe`` with at least ``launches`` samples (fewer only when its
    budget ran out), or with verdict "error"/"skipped" when the release
    cannot be timed; called again with more launches it adds to what it
    has. Releases that cannot be timed, or that the rule cannot place, are
    skipped like ``git bisect skip``: the nearest untested neighbour is
    tried instead.
    """
    versions = [str(v) for v in versions]
    tested = {}

    def timed(index, launches):
        probe = measure(versions[index], launches)
        tested[versions[index]] = probe
        return probe

    def finish(boundary, summary, direction=None):
        order = {v: i for i, v in enumerate(versions)}
        for index in ends_at:
            end = tested[versions[index]]
            if end.usable and end.p_values:
                end.reason = (f"end of the range: {len(end.samples)} launches"
                              f", median {_median_text(end)}; ends differ: p "
                              f"rising {_p_text(end.p_values['rose'])}, "
                              f"falling {_p_text(end.p_values['fell'])}")
        return TimeBisectResult(
            versions, sorted(tested.values(), key=lambda p: order[p.version]),
            boundary, summary, direction, rule)


    ends_at = []
    lo, hi, why = find_ends(versions, lambda i: timed(i, rule.first).usable,
                            ("time", "timed"))
    if why:
        return finish(None, why)
    ends_at = [lo, hi]
    direction = None
    for look in range(rule.looks):
        old, new = (timed(i, rule.launches_at(look)) for i in (lo, hi))
        direction, p_rose, p_fell = compare_ends(old.samples, new.samples,
                                                 rule)
        for probe in (old, new):
            probe.p_values = {"rose": p_rose, "fell": p_fell}
        if direction or not (old.usable and new.usable):
            break
    if not direction:
        return finish(None, f"launch time does not differ between the ends "
                            f"({versions[lo]}: median "
                            f"{_median_text(tested[versions[lo]])}, "
                            f"{versions[hi]}: median "
                            f"{_median_text(tested[versions[hi]])}; "
                            f"p = {_p_text(p_rose)} rising, "
                            f"{_p_text(p_fell)} falling; needs < "
                            f"{rule.alpha_per_look / 2:.3g})")
    old_speed, new_speed = ("fast", "slow") if direction == "rose" \
        else ("slow", "fast")
    tested[versions[lo]].verdict = old_speed
    tested[versions[hi]].verdict = new_speed
    end_index = {old_speed: lo, new_speed: hi}

    def refreshed_ends():
        """Each end's latest launches, ``step`` of them taken just now."""
        latest = {}
        for speed, index in end_index.items():
            before = tested[versions[index]]
            probe = timed(index, len(before.samples) + rule.step)
            probe.verdict, probe.p_values = speed, before.p_values
            latest[speed] = probe.samples[-rule.window:]
        return latest

    def classified(index):
        """Launches added until the rule places the release, or the cap."""
        verdict = None
        ends = refreshed_ends()
        for look in range(rule.looks):
            probe = timed(index, rule.launches_at(look))
            if not probe.usable:
                return probe
            verdict, p_slower, p_faster = classify(
                probe.samples, ends["fast"], ends["slow"], rule)
            probe.p_values = {"slower_than_fast_end": p_slower,
                              "faster_than_slow_end": p_faster}
            if verdict or len(probe.samples) < rule.launches_at(look):
                break
        probe.verdict = verdict or "undecided"
        probe.reason = _probe_reason(probe, rule)
        return probe

    lo, hi, stuck = narrow(
        lo, hi, old_speed, lambda i: classified(i).verdict,
        lambda i: versions[i] in tested
        and tested[versions[i]].verdict not in SPEEDS, SPEEDS)
    if stuck:
        return finish(_boundary(tested, versions, lo, hi),
                      f"launch time {direction} between {versions[lo]} "
                      f"and {versions[hi]}; the releases between "
                      f"({span_text(versions[lo + 1:hi])}) could not be "
                      f"placed", direction)
    return finish(_boundary(tested, versions, lo, hi),
                  f"launch time {direction} between {versions[lo]} (median "
                  f"{_median_text(tested[versions[lo]])}) and {versions[hi]} "
                  f"(median {_median_text(tested[versions[hi]])})", direction)


def _median_text(probe):
    median = quantile(probe.samples, 0.5)
    return "–" if median is None else f"{median:.2f} s"


def _probe_reason(probe, rule):
    p = probe.p_values
    return (f"{len(probe.samples)} launches, median {_median_text(probe)}; "
            f"p slower than fast end {_p_text(p['slower_than_fast_end'])}, "
            f"faster than slow end {_p_text(p['faster_than_slow_end'])}; "
            f"decides below {rule.alpha_per_look / 2:.3g}")


def _p_text(p_values):
    return "(" + ", ".join(f"{name} {p:.3g}" for name, p in
                           p_values.items()) + ")"


def _boundary(tested, versions, lo, hi):
    return {"before": {"version": versions[lo],
                       "verdict": tested[versions[lo]].verdict},
            "after": {"version": versions[hi],
                      "verdict": tested[versions[hi]].verdict}}


class LaunchTimeProber:
    """``measure(version, launches)`` for ``bisect_on_time``, backed by real
    environments: ``env_for(version)`` returns (a ready environment, None)
    or (None, (verdict, reason)) when the release cannot be installed.
    Each call runs the workload for the launches still missing and keeps
    every sample."""

    def __init__(self, env_for, sim, log, limit=LIMIT,
                 budget_per_launch=6.0, min_budget=60.0):
        self.env_for = env_for
        self.sim = sim
        self.log = log
        self.limit = limit
        self.budget_per_launch = budget_per_launch
        self.min_budget = min_budget
        self.seen = {}

    def __call__(self, version, launches):
        probe = self.seen.setdefault(version, TimeProbe(str(version)))
        if probe.verdict in ("error", "skipped") or \
                len(probe.samples) >= launches:
            return probe
        started = time.monotonic()
        env, problem = self.env_for(version)
        if problem:
            probe.verdict, probe.reason = problem
        else:
            missing = launches - len(probe.samples)
            budget = max(self.min_budget, missing * self.budget_per_launch,
                         self.limit + 5)
            record = run_launch_time(env, self.sim, launches=missing,
                                     limit=self.limit, budget=budget)
            probe.samples += record["samples"]
            probe.past_limit += record["past_limit"]
            probe.race_errors += record.get("race_errors", 0)
            if record.get("error") and not probe.samples:
                probe.verdict, probe.reason = "error", record["error"]
        probe.seconds = round(probe.seconds + time.monotonic() - started, 2)
        self.log(f"timed {version}: {len(probe.samples)} launches, median "
                 f"{_median_text(probe)}, {probe.past_limit} past the limit")
        return probe


def run_time_bisect(args, versions, excluded, envdir, out_dir, log, command,
                    rule=TimeRule()):
    """``nox -s bisect -- ... --metric launch-time``: ``bisect_on_time``
    over ``versions`` with real environments (the ones the race bisect and
    the matrix use), written to ``<package>-py<python>-launch-time.json``
    and ``.md`` under ``out_dir``. ``args`` is bisect_session's parsed
    arguments. Returns the written data."""
    from .bisect_session import matrix_envdir
    started = time.monotonic()

    def env_for(version):
        spec = EnvSpec(args.python, (f"{args.package}=={version}",
                                     *args.extra), args.sim)
        env = ProbeEnvironment(matrix_envdir(envdir, spec), args.python, log)
        env.create()
        problem = install(env, spec)
        if problem:
            kind, reason = problem
            return None, ({"skip": "skipped"}.get(kind, "error"), reason)
        return env, None

    prober = LaunchTimeProber(_cached(env_for), args.sim, log)
    result = bisect_on_time(versions, prober, rule)
    return write_time_bisect(result, args, out_dir, command,
                             time.monotonic() - started, excluded)


def _cached(env_for):
    made = {}

    def cached(version):
        if version not in made:
            made[version] = env_for(version)
        return made[version]
    return cached


def write_time_bisect(result, args, out_dir, command, seconds, excluded=()):
    from .bisect import bisect_stem
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end) + "-launch-time"
    data = {"metric": "launch-time", "package": args.package,
            "python": args.python, "sim": args.sim, "with": list(args.extra),
            "from": args.start, "to": args.end,
            "excluded_by_requires_python": list(excluded),
            **result.to_json(), "seconds": round(seconds, 1),
            "provenance": {"command": command, "finished": results.now_iso(),
                           "machine": machine_info()}}
    out_dir = Path(out_dir)
    results.write_json_atomic(out_dir / f"{stem}.json", data)
    results.write_text_atomic(out_dir / f"{stem}.md", render_time_bisect(data))
    return data


def render_time_bisect(data):
    releases = data["releases"]
    lines = [f"# Bisect on launch time: {data['package']} on Python "
             f"{data['python']} (simulator {'on' if data['sim'] else 'off'})",
             "", f"**{data['summary']}.**", "",
             f"Releases in range: {len(releases)} "
             f"({releases[0] if releases else '–'} to "
             f"{releases[-1] if releases else '–'}); extra requirements: "
             f"{' '.join(data['with']) or 'none'}; decisive probes: "
             f"{data['decisive_probes']} (limit {data['probe_limit']}); "
             f"{data['seconds']} s.", "",
             f"Rule: {data['rule']['text']}.", "",
             "| version | verdict | launches | median s | p95 s | past limit "
             "| race errors | seconds | reason |",
             "|---|---|---|---|---|---|---|---|---|"]
    for probe in data["tested"]:
        lines.append(f"| {probe['version']} | {probe['verdict']} | "
                     f"{probe['n']} | {_number(probe['median'])} | "
                     f"{_number(probe['p95'])} | {probe['past_limit']} | "
                     f"{probe['race_errors']} | {probe['seconds']} | "
                     f"{probe['reason'].replace('|', '/')} |")
    return "\n".join(lines + ["", _provenance_line(data)]) + "\n"


def _provenance_line(data):
    provenance = data["provenance"]
    return (f"Command: `{provenance['command']}`; finished "
            f"{provenance['finished']} on {provenance['machine']['os']}, "
            f"{provenance['machine']['cores']} cores.")


def _number(value):
    return "–" if value is None else f"{value:.2f}"


# --- Standalone measurement: python -m racematrix.timing ---

def measure_specs(python, specs, envdir, log, *, sim=True, launches=20,
                  limit=LIMIT, budget=90.0, stack_dir=None):
    """Time the workload in one environment per requirement set; returns
    one entry per spec with its versions and ``launch_seconds``."""
    entries = []
    for requirements in specs:
        spec = EnvSpec(python, tuple(requirements), sim)
        env = ProbeEnvironment(Path(envdir) / f"timing-{spec.env_id}", python,
                               log)
        env.create()
        problem = install(env, spec)
        entry = {"env": spec.env_id, "requirements": list(requirements)}
        if problem:
            entry["launch_seconds"] = empty_record(limit, budget, problem[1])
            entries.append(entry)
            continue
        info = read_environment(env)
        stack_file = None
        if stack_dir:
            Path(stack_dir).mkdir(parents=True, exist_ok=True)
            stack_file = Path(stack_dir) / f"{spec.env_id}.stack.txt"
        started, load_before = time.monotonic(), os.getloadavg()[0]
        record = run_launch_time(env, sim, launches=launches, limit=limit,
                                 budget=budget, stack_file=stack_file)
        # Free cores change how often the lock stalls: record the load.
        entry.update(python=info["python"], packages=info["packages"],
                     wall_seconds=round(time.monotonic() - started, 1),
                     load_average=[load_before, os.getloadavg()[0]],
                     launch_seconds=record)
        if stack_file and stack_file.exists() and stack_file.stat().st_size:
            entry["stack_file"] = str(stack_file)
        # The tables' cell, which names an error itself.
        log(f"{spec.env_id}: launch s {results.format_launch(record)}")
        entries.append(entry)
    return entries


def render_launch_times(data):
    lines = [f"# Launch time of the MWE's timing workload (Python "
             f"{data['python']}, simulator {'on' if data['sim'] else 'off'})",
             "",
             "Each launch: 1 block of 32 threads, each calling a device "
             "function of another module 1,000 times, at Python's default "
             "switch interval (`mwe/launch_time.py`). A launch past the limit "
             "counts at the limit.", "",
             "| requirements | numba | numba-cuda | launches | median s | "
             "p95 s | max s | past limit | race errors | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in data["entries"]:
        record = entry["launch_seconds"]
        packages = entry.get("packages", {})
        lines.append(
            f"| {' '.join(entry['requirements'])} | "
            f"{packages.get('numba', '–')} | {packages.get('numba-cuda', '–')} "
            f"| {record['n']} | {_number(record['median'])} | "
            f"{_number(record['p95'])} | {_number(record['max'])} | "
            f"{record['past_limit']} (limit {record['limit']:g} s) | "
            f"{record.get('race_errors', '–')} | "
            f"{entry.get('wall_seconds', '–')} |")
        if record.get("error"):
            lines.append(f"| ↳ error: {record['error'].replace('|', '/')} "
                         f"|||||||||")
    return "\n".join(lines + ["", _provenance_line(data)]) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m racematrix.timing",
        description="Time mwe/launch_time.py in one fresh environment per "
                    "requirement set; writes launch_time.json and .md.")
    parser.add_argument("--python", required=True)
    parser.add_argument("--spec", action="append", required=True,
                        help="a requirement set, e.g. 'numba-cuda==0.30.4'; "
                             "repeat for more")
    parser.add_argument("--envdir", required=True,
                        help="folder for the environments")
    parser.add_argument("--out", required=True,
                        help="folder for launch_time.json and .md")
    parser.add_argument("--launches", type=int, default=20)
    parser.add_argument("--limit", type=float, default=LIMIT)
    parser.add_argument("--budget", type=float, default=90.0)
    parser.add_argument("--sim", type=int, choices=(0, 1), default=1)
    args = parser.parse_args(argv)
    try:
        python = parse_python(args.python)
        specs = [parse_spec(text) for text in args.spec]
    except ConfigError as error:
        parser.error(str(error))
    expose_interpreters()
    missing = missing_interpreters([python])
    if missing:
        sys.exit(f"timing: {missing}")
    out = Path(args.out)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    try:
        entries = measure_specs(python, specs, args.envdir, log,
                                sim=bool(args.sim), launches=args.launches,
                                limit=args.limit, budget=args.budget,
                                stack_dir=out / "stacks")
    except BadInput as error:
        sys.exit(f"timing: {error}")
    data = {"python": python, "sim": bool(args.sim), "entries": entries,
            "provenance": {"command": "python -m racematrix.timing "
                                      + shlex.join(sys.argv[1:] if argv is None
                                                   else argv),
                           "finished": results.now_iso(),
                           "machine": machine_info()}}
    results.write_json_atomic(out / "launch_time.json", data)
    results.write_text_atomic(out / "launch_time.md", render_launch_times(data))
    print(render_launch_times(data))


if __name__ == "__main__":
    main()
