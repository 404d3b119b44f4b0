"""The bisect's search, whatever it measures: ``git bisect`` over releases
with skipping. ``find_ends`` finds the usable ends of a range and ``narrow``
halves the span between two releases that differ; what "usable" and
"differ" mean is the caller's (the race's verdict, or launch time)."""


def find_ends(versions, usable_at, verb=("test", "tested")):
    """The first and the last release for which ``usable_at(index)`` holds
    (it tests the release), searched from either end: (lo, hi, None), or
    (lo, hi, why) where the range has no two such releases. ``verb`` words
    the reason: ("time", "timed") for the bisect on time."""
    if not versions:
        return None, None, f"no release to {verb[0]} in the range"
    lo = next((i for i in range(len(versions)) if usable_at(i)), None)
    if lo is None:
        return None, None, f"no release in the range could be {verb[1]}"
    hi = next((i for i in range(len(versions) - 1, lo, -1) if usable_at(i)),
              None)
    if hi is None:
        return lo, None, (f"only {versions[lo]} could be {verb[1]}; nothing "
                          f"to compare it with")
    return lo, hi, None


def narrow(lo, hi, low_verdict, decide, known_unusable, usable, first=()):
    """``git bisect`` between indices ``lo`` and ``hi``, whose verdicts
    differ, with skipping: ``decide(index)`` tests a release and returns its
    verdict; one not in ``usable`` is skipped, and the untested release
    nearest the middle is tried instead (``known_unusable(index)`` says a
    release was already found untestable). ``first`` (indices, a guess such
    as another bisect's pair) are tried before the middle while they lie
    between ``lo`` and ``hi``: each is placed by its own probe like any
    other, so a wrong guess costs its probes, never the answer. Returns
    (lo, hi, stuck): stuck is True when no release between could be
    placed."""
    guesses = list(first)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        guesses = [i for i in guesses if lo < i < hi]
        candidates = guesses[:1] + sorted(
            (i for i in range(lo + 1, hi) if i not in guesses[:1]),
            key=lambda i: (abs(i - mid), i))
        guesses = guesses[1:]
        for index in candidates:
            if known_unusable(index):
                continue
            verdict = decide(index)
            if verdict in usable:
                break
        else:
            return lo, hi, True
        if verdict == low_verdict:
            lo = index
        else:
            hi = index
    return lo, hi, False


def guess_indices(versions, guess):
    """The indices of the releases of ``guess`` (version strings) that are
    in ``versions``, in the guess's order."""
    where = {str(version): index for index, version in enumerate(versions)}
    return [where[str(version)] for version in guess if str(version) in where]


def guess_held(guess, found):
    """Whether a search's ``found`` boundary (``boundary()``'s dict, or
    None) is the adjacent pair ``guess`` named: True, False, or None where
    there was no pair to compare."""
    if len(guess) != 2 or not found:
        return None
    return [found["before"]["version"], found["after"]["version"]] == \
        [str(version) for version in guess]


def span_text(between):
    """``0.25.0``, or ``3 releases, 0.25.0 to 0.27.0``."""
    return between[0] if len(between) == 1 else \
        f"{len(between)} releases, {between[0]} to {between[-1]}"


def boundary(tested, versions, lo, hi):
    return {"before": {"version": versions[lo],
                       "verdict": tested[versions[lo]].verdict},
            "after": {"version": versions[hi],
                      "verdict": tested[versions[hi]].verdict}}


def probe_limit(n):
    return (max(n, 1) - 1).bit_length() + 3


class Probed:
    """What a search has measured so far, by release. Calling it with a
    release's index and an amount (runs, launches) measures that release
    through ``measure(version, amount, **how)`` and keeps the probe; with
    ``alongside`` (indices), through ``measure(version, amount,
    alongside=versions)``, which takes each of the release's new
    measurements in turn with one of each release alongside (like with
    like over time) and returns their probes, the release's first.
    ``in_order`` gives the probes oldest release first."""

    def __init__(self, versions, measure):
        self.versions = [str(v) for v in versions]
        self.measure = measure
        self.by_version = {}

    def __call__(self, index, amount, alongside=(), **how):
        if not alongside:
            probe = self.measure(self.versions[index], amount, **how)
            self.by_version[self.versions[index]] = probe
            return probe
        probes = self.measure(self.versions[index], amount, alongside=[
            self.versions[i] for i in alongside])
        for probe in probes:
            self.by_version[probe.version] = probe
        return probes[0]

    def in_order(self):
        order = {v: i for i, v in enumerate(self.versions)}
        return sorted(self.by_version.values(),
                      key=lambda probe: order[probe.version])
