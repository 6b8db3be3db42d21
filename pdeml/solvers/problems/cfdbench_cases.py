"""CFDBench's case lists (Luo et al., 2023): the BC / PROP / GEO parameter values per problem.

Each of CFDBench's four problems has three subsets of cases; a subset varies one group of
parameters while the others stay at the problem's default case. The values below are read
from the generation scripts of luo-yining/CFDBench (``generation-code/fluent-scheme/
create_scheme.py`` and ``generation-code/icem-rpl/mesh.py``) where those scripts hold them,
and named as CFDBench's ``case.json`` names them (``src/dataset/<problem>.py``):

===========  ===================================  ======  ===========================
problem      subset: values                       cases   source
===========  ===================================  ======  ===========================
cavity       bc: vel_top 1, 2, ..., 50            50      create_scheme.py (cavity)
             prop: density {0.1, 0.5, 1..10} x    84      create_scheme.py (cavity)
             viscosity {1e-5, 5e-5, ..., 1e-2}
             geo: height x width, 5 x 5           25      not in the scripts: pdeml
             default: vel_top 10, density 1,              create_scheme.py; the
             viscosity 1e-5; 0.01 m square                0.01 m size is pdeml's
                                                          assumption (Re 1e4)
tube         bc: vel_in linspace(0.1, 5, 50)      50      create_scheme.py (laminar)
             prop: density linspace(10, 1000,     100     create_scheme.py (laminar)
             10) x viscosity linspace(0.01, 1,
             10); default 100, 0.1, vel_in 1
             geo: height x width, 5 x 5           25      not in the scripts: pdeml
dam          bc: velocity linspace(0.05, 1, 20)   70      create_scheme.py (step)
             + linspace(1.02, 2, 50)
             prop: as tube                        100     create_scheme.py (step)
             geo: barrier_height linspace(0.11,   50      mesh.py
             0.15, 5) x barrier_width
             linspace(0.01, 0.1, 10)
cylinder     default: vel_in 1, density 10,               create_scheme.py (karman)
             viscosity 1e-3
             bc 50 / prop 115 / geo 20            185     counts of the paper; values:
                                                          pdeml (karman_set.txt, the
                                                          list, is not released)
===========  ===================================  ======  ===========================

Where the scripts are silent the lists are pdeml's own, with CFDBench's case counts, and
say so in :attr:`CaseList.source`. The tube and dam lists serve pdeml's single-phase
stand-ins (``channel``, ``step``) here; the two-phase solvers of those problems plug in
through the same :func:`case_list` (one :class:`CaseList` per CFDBench problem).

Converged pairs: CFDBench's autoregressive loaders (``<Problem>AutoDataset.load_data``)
of the cavity, tube and cylinder stop a case at its first pair whose mean change of speed is
below ``stable_state_diff`` (1e-3); the dam's loader has that test commented out and keeps
every pair. :attr:`CaseList.drops_converged` records it and :func:`stable_state_diff` gives
the threshold to use per problem (``None`` for the dam).

The train / dev / test split is CFDBench's (``get_<problem>_auto_datasets``): the chosen
subsets' case folders in the order prop, bc, geo, each sorted by case number, shuffled by
Python's ``random.seed(seed); random.shuffle``, then 80 % / 10 % / the rest (rounded for the
cavity, truncated for the others, as CFDBench's code does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUBSETS = ("bc", "prop", "geo")
STABLE_STATE_DIFF = 1e-3  # CFDBench's converged-pair threshold (mean |change of speed|)
SUBSET_ORDER = ("prop", "bc", "geo")  # CFDBench concatenates the chosen subsets in this order


@dataclass(frozen=True)
class CaseList:
    """The cases of one CFDBench problem.

    Attributes
    ----------
    problem
        CFDBench's problem name (``cavity``, ``tube``, ``dam``, ``cylinder``).
    defaults
        The default case, CFDBench's ``case.json`` keys.
    varied
        Per subset, the list of ``{key: value}`` overrides of the default, one per case.
    source
        Where each subset's values come from.
    drops_converged
        Whether CFDBench's autoregressive loader of the problem drops the pairs from the
        first converged one on (cavity, tube, cylinder) or keeps every pair (dam).
    """

    problem: str
    defaults: dict[str, float]
    varied: dict[str, list[dict[str, float]]]
    source: dict[str, str] = field(default_factory=dict)
    drops_converged: bool = True

    def cases(self, subset: str) -> list[dict[str, float]]:
        """Every case of ``subset``, as full ``case.json`` dicts (CFDBench's case order)."""
        if subset not in self.varied:
            raise ValueError(f"unknown CFDBench subset '{subset}' of {self.problem}; use one "
                             f"of {', '.join(self.varied)}")
        return [{**self.defaults, **{k: float(v) for k, v in c.items()}}
                for c in self.varied[subset]]


def _grid(**axes: Any) -> list[dict[str, float]]:
    """Cartesian product, the last axis fastest (as CFDBench's nested loops)."""
    keys = list(axes)
    mesh = np.meshgrid(*[np.asarray(v, float) for v in axes.values()], indexing="ij")
    return [dict(zip(keys, map(float, row), strict=True))
            for row in np.stack([m.ravel() for m in mesh], 1)]


def _line(key: str, values: Any) -> list[dict[str, float]]:
    return [{key: float(v)} for v in np.asarray(values, float)]


_SCRIPT = "create_scheme.py of luo-yining/CFDBench"
_PDEML = "pdeml's choice (not in CFDBench's released scripts), CFDBench's case count"

CAVITY = CaseList(
    "cavity",
    {"vel_top": 10.0, "density": 1.0, "viscosity": 1e-5, "height": 0.01, "width": 0.01},
    {"bc": _line("vel_top", np.linspace(1, 50, 50)),
     "prop": _grid(density=[*np.linspace(1, 10, 10), 0.1, 0.5],
                   viscosity=[1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]),
     "geo": _grid(height=np.linspace(0.01, 0.05, 5), width=np.linspace(0.01, 0.05, 5))},
    {"bc": _SCRIPT, "prop": _SCRIPT, "geo": _PDEML},
)
_PROP = _grid(density=np.linspace(10, 1000, 10), viscosity=np.linspace(0.01, 1, 10))
TUBE = CaseList(
    "tube",
    {"vel_in": 1.0, "density": 100.0, "viscosity": 0.1, "height": 0.1, "width": 1.0},
    {"bc": _line("vel_in", np.linspace(0.1, 5, 50)), "prop": _PROP,
     "geo": _grid(height=np.linspace(0.05, 0.15, 5), width=np.linspace(0.5, 1.5, 5))},
    {"bc": _SCRIPT, "prop": _SCRIPT, "geo": _PDEML},
)
DAM = CaseList(
    "dam",
    {"velocity": 1.0, "density": 100.0, "viscosity": 0.1, "barrier_height": 0.1,
     "barrier_width": 0.05, "height": 0.4, "width": 1.5},
    {"bc": _line("velocity", np.concatenate([np.linspace(0.05, 1, 20),
                                              np.linspace(1.02, 2, 50)])),
     "prop": _PROP,
     "geo": _grid(barrier_height=np.linspace(0.11, 0.15, 5),
                  barrier_width=np.linspace(0.01, 0.1, 10))},
    {"bc": _SCRIPT, "prop": _SCRIPT, "geo": "mesh.py of luo-yining/CFDBench"},
    drops_converged=False,  # src/dataset/dam.py: the convergence test is commented out
)
# Schafer-Turek-like channel around a cylinder at the origin (CFDBench stores the domain as
# x_min..x_max, y_min..y_max around the cylinder's centre)
CYLINDER = CaseList(
    "cylinder",
    {"vel_in": 1.0, "density": 10.0, "viscosity": 1e-3, "radius": 0.05, "x_min": -0.2,
     "x_max": 2.0, "y_min": -0.2, "y_max": 0.21},
    {"bc": _line("vel_in", np.linspace(0.1, 1.0, 50)),
     "prop": _grid(density=[1.0, 5.0, 10.0, 50.0, 100.0],
                   viscosity=np.geomspace(1e-3, 1e-1, 23)),
     # the channel keeps its 2.2 x 0.41 size; the cylinder's radius and height in it vary
     "geo": [{"radius": r, "y_min": -c, "y_max": 0.41 - c}
             for r in (0.02, 0.03, 0.04, 0.05, 0.06) for c in (0.15, 0.18, 0.2, 0.23)]},
    {"bc": _PDEML, "prop": _PDEML, "geo": _PDEML, "default": _SCRIPT},
)
CASE_LISTS: dict[str, CaseList] = {c.problem: c for c in (CAVITY, TUBE, DAM, CYLINDER)}


def case_list(problem: str) -> CaseList:
    """The :class:`CaseList` of a CFDBench problem (``cavity``, ``tube``, ``dam``,
    ``cylinder``)."""
    if problem not in CASE_LISTS:
        raise ValueError(f"unknown CFDBench problem '{problem}'; use one of "
                         f"{', '.join(CASE_LISTS)}")
    return CASE_LISTS[problem]


def stable_state_diff(problem: str) -> float | None:
    """CFDBench's converged-pair threshold for ``problem`` as its loader applies it:
    :data:`STABLE_STATE_DIFF` for the cavity, tube and cylinder, ``None`` (keep every pair)
    for the dam."""
    return STABLE_STATE_DIFF if case_list(problem).drops_converged else None


def parse_subsets(name: str) -> list[str]:
    """CFDBench's subset naming: ``"bc"``, ``"prop_bc"``, ``"all"`` ... in its order."""
    chosen = list(SUBSET_ORDER) if name == "all" else [s for s in SUBSET_ORDER if s in name]
    if not chosen:
        raise ValueError(f"no CFDBench subset in '{name}'; use bc, prop, geo, a combination "
                         "such as prop_bc, or all")
    return chosen


def cfdbench_split(items: list[Any], seed: int = 0, rounding: str = "round"
                   ) -> dict[str, list[Any]]:
    """CFDBench's case-level 8:1:1 split of ``items`` (already in CFDBench's order).

    ``rounding`` is ``"round"`` (cavity) or ``"floor"`` (tube, dam, cylinder), as in the
    respective ``get_<problem>_auto_datasets`` (the autoregressive task's split; CFDBench's
    non-autoregressive getters round for all but the cylinder, and pdeml uses the
    autoregressive split for both tasks).
    """
    items = list(items)
    state = random.getstate()  # CFDBench seeds the global generator; restore it afterwards
    random.seed(seed)
    random.shuffle(items)
    random.setstate(state)
    cut = round if rounding == "round" else int
    n_train, n_dev = cut(len(items) * 0.8), cut(len(items) * 0.1)
    return {"train": items[:n_train], "val": items[n_train:n_train + n_dev],
            "test": items[n_train + n_dev:]}
