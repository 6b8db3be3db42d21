"""The contract between a PDE problem and the dataset generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Variable:
    """A stored variable: its dimensions (without ``sample``) and its units."""

    dims: tuple[str, ...]
    units: str = "1"
    description: str = ""
    dtype: str = ""  # HDF5 type; "" means float32 for fields, float64 for per-sample scalars


class Problem:
    """Base class of the problems that ``pdeml generate`` can write.

    A subclass declares its ``name``, its declared convergence ``order`` (checked by the tests),
    the variables it produces, the coordinates of its grid and its provenance attributes, and
    draws one sample from a random generator in :meth:`sample`. The generator calls
    :meth:`sample` with a generator seeded from ``(seed, split, index)``, so a sample depends on
    its index only and a resumed job reproduces an uninterrupted one bit for bit.
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 0
    input_vars: ClassVar[tuple[str, ...]] = ()
    output_vars: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Problem]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            Problem.registry[cls.name] = cls

    def variables(self) -> dict[str, Variable]:
        """Variables written per sample, in writing order."""
        raise NotImplementedError

    def coords(self) -> dict[str, np.ndarray]:
        """Coordinate arrays, one per grid dimension."""
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """Settings that define the problem (provenance; also how to rebuild it)."""
        raise NotImplementedError

    def coord_units(self) -> dict[str, str]:
        """Units of the coordinates by name; those not named are non-dimensional (``"1"``)."""
        return {}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        """Boundary conditions, recorded in the file's ``boundary_conditions`` group.

        ``{name: {"bc_type", "dim", "side", "fields", "value"}}``, as described in
        :func:`pdeml.datasets.schema.write_boundary_conditions`; empty when not declared.
        """
        return {}

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the random inputs and solve: one array per variable."""
        raise NotImplementedError


def box_boundaries(
    bc_type: str, fields: tuple[str, ...] | list[str], value: float | None = None,
    dims: tuple[str, ...] = ("x", "y"),
) -> dict[str, dict[str, Any]]:
    """The same condition on both ends of each of ``dims`` (periodic: one entry per dim)."""
    extra = {} if value is None else {"value": value}
    if bc_type == "periodic":
        return {f"{d}_periodic": {"bc_type": bc_type, "dim": d, "side": "both",
                                  "fields": list(fields)} for d in dims}
    return {f"{d}_{side}": {"bc_type": bc_type, "dim": d, "side": side,
                            "fields": list(fields), **extra}
            for d in dims for side in ("lower", "upper")}


def make_problem(name: str, **kwargs: Any) -> Problem:
    """Build a registered problem by name, with a one-line error for unknown names or options."""
    if name not in Problem.registry:
        known = ", ".join(sorted(Problem.registry))
        raise ValueError(f"unknown problem '{name}'; available: {known}")
    cls = Problem.registry[name]
    from pdeml.checks import check_options

    check_options(cls.__init__, kwargs, name)  # 'resolution=abc' named, not int()'s message
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad options for problem '{name}': {err}") from None
