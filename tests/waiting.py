"""Wait for a background thread's or process's state instead of for a time.

A test that asserts on what another thread or process did must first wait for the event it
asserts, up to a deadline far beyond any healthy run: a fixed sleep or "assert right after the
last sample" races with that thread on a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds a background event may take before the test fails; generous, since a test that
#: waits on the event itself passes as soon as the event happens.
DEADLINE = 120.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE,
               poll: float = 0.05) -> None:
    """Return once ``predicate()`` is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)
