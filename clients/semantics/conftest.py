"""The semantics suite: what device code and a debugger see under the CUDA
simulator, case by case. Each case records what it observed as the JUnit
property ``observed`` (the raw row keeps it), then asserts what the
unpatched simulator does; a candidate fix is compared with the unpatched
release case by case, by outcome and by observed value."""
import json

import pytest


@pytest.fixture
def observe(record_property):
    """Record a case's observed value (JSON-able) in the JUnit report and
    return it."""
    def record(value):
        record_property("observed", json.dumps(value, sort_keys=True))
        return value
    return record


def outcome(call, *args, **kwargs):
    """What calling ``call(*args, **kwargs)`` gave: its value, or the exception's type
    and message with the simulator's thread prefix cut off."""
    try:
        return {"value": call(*args, **kwargs)}
    except Exception as error:  # noqa: BLE001 - the exception is the observation
        message = str(error)
        if "ctaid=" in message and ": " in message:
            message = message.split(": ", 1)[1]
        return {"raised": type(error).__name__, "message": message}
