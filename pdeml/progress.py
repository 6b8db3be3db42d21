"""Progress reports on stderr: a bar on a terminal, a line every few seconds in logs and pipes.

Every long job of pdeml reports through here, so ``pdeml --quiet`` (or :func:`set_enabled`)
silences them all and none ever writes to stdout, which carries results only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_state = {"enabled": True, "every_s": 10.0}


def set_enabled(enabled: bool) -> None:
    """Switch every pdeml progress report on or off (``--quiet`` switches them off)."""
    _state["enabled"] = bool(enabled)


def enabled() -> bool:
    """Whether progress reports are on."""
    return bool(_state["enabled"])


def note(message: str) -> None:
    """One progress line on stderr (nothing when progress is off)."""
    if _state["enabled"]:
        print(message, file=sys.stderr, flush=True)


def track(iterable: Iterable[T], total: int | None = None, desc: str = "",
          unit: str = "it") -> Iterator[T]:
    """Iterate with progress: tqdm on a terminal, else a line every ``every_s`` s and at the end.

    Parameters
    ----------
    iterable
        What to iterate over.
    total
        Its length, when ``len()`` does not give it.
    desc, unit
        Label of the bar or line, and the unit counted.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not _state["enabled"]:
        yield from iterable
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                        dynamic_ncols=True, mininterval=0.5)
        return
    yield from _lines(iterable, total, desc, unit)


def _lines(iterable: Iterable[T], total: int | None, desc: str, unit: str) -> Iterator[T]:
    t0 = last = time.perf_counter()
    n = 0
    for n, item in enumerate(iterable, 1):
        yield item
        now = time.perf_counter()
        if now - last >= _state["every_s"]:
            _line(desc, n, total, unit, now - t0)
            last = now
    _line(desc, n, total, unit, time.perf_counter() - t0)


def _line(desc: str, n: int, total: Any, unit: str, elapsed: float) -> None:
    of = f"/{total}" if total else ""
    print(f"{desc}: {n}{of} {unit} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
