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


@dataclass(frozen=True)
class ParameterRange:
    """A PDE parameter drawn per sample: its interval and how it is spread over it.

    A sampler works on the unit interval (:meth:`to_unit`, :meth:`from_unit`): uniform there
    is the problem's own prior (log-uniform for ``scale="log"``).
    """

    low: float
    high: float
    scale: str = "linear"  # "linear" (uniform) or "log" (log-uniform)

    def __post_init__(self) -> None:
        if self.scale not in ("linear", "log"):
            raise ValueError(f"parameter scale must be 'linear' or 'log', got '{self.scale}'")
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"parameter range needs finite low < high, got [{self.low}, "
                             f"{self.high}]")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"a log-scale parameter range needs low > 0, got {self.low}")

    def from_unit(self, u: float) -> float:
        """The value at ``u`` in [0, 1] (0: ``low``, 1: ``high``)."""
        u = float(np.clip(u, 0.0, 1.0))
        if self.scale == "log":
            return float(np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def to_unit(self, value: float) -> float:
        """Where ``value`` sits in [0, 1]."""
        if self.scale == "log":
            span = np.log(self.high) - np.log(self.low)
            return float((np.log(value) - np.log(self.low)) / span)
        return float((value - self.low) / (self.high - self.low))

    def draw(self, rng: np.random.Generator) -> float:
        """One value from the prior."""
        return self.from_unit(rng.random())

    def check(self, name: str, value: Any) -> float:
        """``value`` as a float inside the range, else a one-line ``ValueError``."""
        v = float(value)
        if not (self.low <= v <= self.high):
            raise ValueError(f"parameter {name}={v:g} is outside its range [{self.low:g}, "
                             f"{self.high:g}]")
        return v


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

    def parameter_space(self) -> dict[str, ParameterRange]:
        """The PDE parameters drawn per sample (and stored per sample), by name.

        Empty for a problem whose parameters are fixed options. Where it is not, the problem's
        :meth:`sample` takes ``params`` (a value per name, each inside its range) that replace
        the draw: how an active sampler chooses where to generate
        (:meth:`sample_with`).
        """
        return {}

    def stored_inputs(self, rng: np.random.Generator,
                      params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """The input variables (and per-sample parameters) of the sample that
        :meth:`sample_with` ``(rng, params)`` gives, as stored, without solving: how a
        pool-based sampler scores candidates (``sbal``).

        The same generator state gives bitwise the stored inputs of :meth:`sample_with`. A
        problem that cannot draw its inputs apart from its solve raises
        ``NotImplementedError``.
        """
        raise NotImplementedError(f"{self.name} cannot draw its inputs without solving")

    def sample_with(self, rng: np.random.Generator,
                    params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """:meth:`sample`, with the per-sample parameters given instead of drawn.

        Parameters
        ----------
        rng
            The sample's generator (the rest of the sample, e.g. its initial condition, is
            drawn from it as without ``params``).
        params
            A value for every name of :meth:`parameter_space`, or ``None`` to draw them.

        Raises
        ------
        ValueError
            ``params`` for a problem without per-sample parameters, a missing or unknown
            name, or a value outside its range.
        """
        if params is None:
            return self.sample(rng)
        return self.sample(rng, params=self.checked_params(params))  # type: ignore[call-arg]

    def draw_parameters(self, rng: np.random.Generator,
                        params: dict[str, Any] | None) -> dict[str, float]:
        """Each parameter of :meth:`parameter_space`, drawn from ``rng`` in its order, or
        ``params`` (checked by :meth:`checked_params`) where given.

        Drawn even when given, so that the rest of the sample, drawn after, stays the same.
        """
        drawn = {k: r.draw(rng) for k, r in self.parameter_space().items()}
        return drawn if params is None else self.checked_params(params)

    def checked_params(self, params: dict[str, Any]) -> dict[str, float]:
        """``params`` as floats, each inside its range of :meth:`parameter_space`.

        Raises
        ------
        ValueError
            A problem without per-sample parameters, a missing or unknown name, or a value
            outside its range.
        """
        space = self.parameter_space()
        if not space:
            raise ValueError(f"{self.name}: no per-sample parameters to set (got "
                             f"{', '.join(sorted(params))})")
        if set(params) != set(space):
            raise ValueError(f"{self.name}: per-sample parameters are {', '.join(sorted(space))};"
                             f" got {', '.join(sorted(params))}")
        return {k: space[k].check(k, v) for k, v in params.items()}


def range_option(problem: str, name: str, value: Any, scale: str,
                 minimum: float | None = None) -> ParameterRange:
    """A ``[low, high]`` option (a YAML or ``--set`` list) as a :class:`ParameterRange`.

    Parameters
    ----------
    problem, name
        The problem and the option, for the message.
    value
        Two finite numbers, ``low < high`` (a list, tuple or 1-D array).
    scale
        ``"linear"`` or ``"log"`` (:class:`ParameterRange`).
    minimum
        The smallest ``low`` allowed (``None``: any; a log scale needs ``low > 0`` in any case).

    Raises
    ------
    ValueError
        One line naming the option: not two numbers, ``low >= high`` or ``low`` too small.
    """
    ok = isinstance(value, list | tuple | np.ndarray) and np.ndim(value) == 1 and len(value) == 2
    try:
        low, high = (float(v) for v in value) if ok else (np.nan, np.nan)
    except (TypeError, ValueError):
        low = high = np.nan
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{problem}: {name} takes [low, high], got {value!r}")
    if not low < high:
        raise ValueError(f"{problem}: {name} needs low < high, got [{low:g}, {high:g}]")
    if minimum is not None and low < minimum:
        raise ValueError(f"{problem}: {name} needs low >= {minimum:g}, got [{low:g}, {high:g}]")
    if scale == "log" and low <= 0:
        raise ValueError(f"{problem}: {name} needs low > 0, got [{low:g}, {high:g}]")
    return ParameterRange(low, high, scale)


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
