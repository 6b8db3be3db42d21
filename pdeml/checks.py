"""Input validation shared by the verbs: types of options, sizes, memory, outputs, finiteness.

Everything here runs *before* a verb creates a file or a folder, so that a rejected command
leaves nothing behind, and raises :class:`InputError` (a ``ValueError``) whose message names
the input and what is expected, in one line. This module imports nothing from pdeml: every
layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import types
import typing
from collections import abc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np


class InputError(ValueError):
    """A user-supplied value is of the wrong type, out of range, or would not fit in memory."""


# ------------------------------------------------------------------------------ option types
def describe_type(tp: Any) -> str:
    """A reader's name for a type hint (``int``, ``a number``, ``null``, ``one of 'a', 'b'``)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe_type(a) for a in typing.get_args(tp)))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             type(None): "null", list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(origin or tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` (parsed from YAML) fits the hint ``tp``; unknown hints accept all."""
    if tp is Any or tp is typing.Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:  # YAML `true` is a bool, which Python also counts as an int
        return isinstance(value, int | np.integer) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence, abc.Sequence) or tp in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True  # Path, Callable, classes...: left to the callee


def check_options(func: Callable[..., Any], options: dict[str, Any], owner: str) -> None:
    """Check ``options`` against the type hints of ``func`` before calling it.

    Only hints of plain kinds (numbers, strings, booleans, lists, mappings, ``Literal`` and
    unions of these) are checked; names the function does not take are left to it.

    Raises
    ------
    InputError
        ``"<owner>.<name> must be an integer, got 'abc'"``.
    """
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: nothing to check against
        return
    for name, value in options.items():
        if name in hints and not _matches(value, hints[name]):
            raise InputError(f"{owner}.{name} must be {describe_type(hints[name])}, "
                             f"got {value!r}")
        if not _finite(value):  # YAML's .nan / .inf: a solver or optimizer would run on it
            raise InputError(f"{owner}.{name} must be a finite number, got {value!r}")


def _finite(value: Any) -> bool:
    """False for a NaN or an infinity, alone or inside a list (no pdeml option takes one)."""
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def check_int(value: Any, name: str, minimum: int | None = None,
              allowed: Iterable[int] = ()) -> int:
    """``value`` as an int, with ``minimum`` (or one of ``allowed``); one-line error otherwise."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    allowed = tuple(allowed)
    if ok and (minimum is None or value >= minimum or value in allowed):
        return int(value)
    what = "an integer"
    if minimum is not None:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}")
    if allowed:
        what += " or " + " or ".join(map(str, allowed))
    raise InputError(f"{name} must be {what}, got {value!r}")


# -------------------------------------------------------------------------------- memory
def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; total RAM as fallback)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 1 << 62


def format_bytes(n: float) -> str:
    """``n`` bytes in GiB (TiB above a PiB), three significant digits."""
    if n < 2**30:
        return f"{n / 2**20:.3g} MiB"
    return f"{n / 2**30:.3g} GiB" if n < 2**50 else f"{n / 2**40:.3g} TiB"


def check_memory(n_bytes: float, what: str) -> None:
    """Refuse a job that needs at least ``n_bytes`` when less memory is available.

    ``n_bytes`` is a lower bound the caller can compute cheaply (array sizes); the check
    only stops jobs that cannot possibly run, it does not promise that the others fit.
    """
    have = available_memory()
    if n_bytes > have:
        raise InputError(f"{what} needs at least {format_bytes(n_bytes)} of memory, but only "
                         f"{format_bytes(have)} is available; choose smaller sizes")


# ------------------------------------------------------------------------------- outputs
def check_output(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """Refuse to replace an existing ``path`` unless ``overwrite``; returns it as a Path."""
    path = Path(path)
    if path.is_dir() and not overwrite:
        raise InputError(f"{what} {path} is a folder; name a file")
    if path.exists() and not overwrite:
        raise InputError(f"{what} {path} exists; pass --overwrite to replace it")
    return path


# ----------------------------------------------------------------------------- finiteness
def first_nonfinite(a: np.ndarray) -> int | None:
    """Index along axis 0 of the first sample of ``a`` holding a NaN or an infinity."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc" or a.size == 0:
        return None
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1) if a.ndim > 1 else ~np.isfinite(a)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


# ------------------------------------------------------------------- what a call created
def missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    out = []
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def remove_made(made: list[Path], tree: bool = True) -> None:
    """Remove folders a failed call created (``missing_dirs`` before it ran), deepest first.

    With ``tree`` the deepest goes with its contents (the call's own scratch folder); every
    other one only while empty, so nothing a user put there meanwhile is deleted.
    """
    for i, folder in enumerate(made):
        if i == 0 and tree:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            folder.rmdir()
        except OSError:  # not empty (another split's output), or already gone
            return


def write_atomic(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Write a file through ``write(binary file object)`` beside ``path``, then rename it into
    place: a failed write (a full disk, a read-only folder) leaves neither a partial file nor
    the temporary one, nor a folder this call created, and names ``path`` in one line."""
    path = Path(path)
    made = missing_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        remove_made(made, tree=False)
        why = err.strerror or f"{err} (is the disk full?)"  # numpy's short write has none
        raise InputError(f"cannot write {path}: {why}") from None
    return path


def check_writable(path: str | Path) -> None:
    """Refuse an output whose folder cannot be written, before any work is done.

    Probed with a file made and removed in the nearest existing folder (permission bits do
    not tell for root, nor for a read-only mount).
    """
    path = Path(path).absolute()
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".pdeml-probe-", dir=folder)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err} ({folder})") from None
    os.close(fd)
    os.unlink(probe)
