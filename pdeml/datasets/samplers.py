"""Active samplers for the online stream: which PDE parameters the generators solve next.

A problem with per-sample parameters (:meth:`~pdeml.solvers.problems.base.Problem.
parameter_space`, e.g. ``burgers`` with ``viscosity_range``) lets a sampler choose them. The
stream's feeder asks the sampler for each new sample's parameters (:meth:`Sampler.propose`,
``None``: the problem draws from its prior, as without a sampler); the trainer reports each
streamed sample's training loss (:meth:`Sampler.observe`, through
:class:`~pdeml.datasets.online.SamplerFeedback`). Every method runs in the trainer process
under one lock, and its own time is counted (:attr:`Sampler.seconds`) so the stream can report
it as a fraction of the solver time it steers.

Samplers work on the unit cube: coordinate ``u`` of a parameter maps to its range with
:meth:`~pdeml.solvers.problems.base.ParameterRange.from_unit`, where the problem's prior is
uniform (log-uniform parameters are uniform in ``log``).

``uniform``
    Today's stream: every sample from the prior (bitwise the samples of ``pdeml generate``).
``breed``
    Breed (Dymchenko & Raffin), as Melissa implements it and OGAS (``melissa-sa/ogas``,
    ``scripts/configs/active_sampling.py``) configures it. Where pdeml follows it: parents are
    drawn from a sliding window of observed samples with probability proportional to
    ``loss - min(loss)`` (all equal: uniform); a child is the parent plus Gaussian noise of
    ``sigma = 0.1`` of the range (OGAS's "10% of parameter range"); a child that leaves the
    range is redrawn with the noise shrunk by ``0.3`` (Melissa's ``oob_factor``) a few times,
    else it takes the parent's value (no clipping); the share of bred samples ramps linearly
    from ``start = 0`` to ``end = 0.7`` over ``breakpoint = 3`` generations, the rest drawn
    from the prior. Where it departs: the signal is each streamed sample's training loss
    (relative L2), not Melissa's ``delta_loss`` (its definition was not readable: it lives in
    Melissa's GitLab, which the index lacks); ``sigma`` is a standard deviation in unit
    coordinates (Melissa passes it as a covariance); a generation is ``period`` proposals
    (Melissa: a resampling event every few buffer turnovers); breeding starts after
    ``min_observed`` observations (OGAS: after two buffer watermarks of finished
    simulations); whether a sample is bred is drawn per sample from a generator seeded by
    ``(seed, index)``, which keeps proposals deterministic given the signals seen so far.
``hardness``
    pdeml's own (:class:`HardnessSampler`): a per-cell moving average of the loss over the
    range, sampled in proportion to it, with a share drawn from the prior.
``tilted``
    A fixed density over the range (:class:`TiltedSampler`), the non-adaptive baseline an
    active sampler must beat: more samples where the user expects the error.
``sbal``
    AL4PDE's SBAL (:class:`SBALSampler`): a candidate pool per sample, scored between
    optimizer steps by the disagreement of the trained model and a second ensemble member.

Determinism: every sampler here proposes as a pure function of ``(seed, index)`` and the
signals observed before the proposal. In a stream, *when* a signal arrives relative to a
proposal depends on the trainer's and the generators' speeds, so an active stream is not
bitwise reproducible run to run (as FIRO's order is not); ``uniform`` is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, ClassVar

import numpy as np

from pdeml.solvers.problems.base import ParameterRange

__all__ = ["SAMPLERS", "BreedSampler", "HardnessSampler", "SBALSampler", "Sampler",
           "TiltedSampler", "UniformSampler", "make_sampler"]


class Sampler:
    """Base class: chooses per-sample parameters and learns from per-sample losses.

    Parameters
    ----------
    space
        The problem's :meth:`~pdeml.solvers.problems.base.Problem.parameter_space`.
    seed
        Seed of the sampler's own draws (a proposal for sample ``i`` uses ``(seed, i)``).
    signal
        Which training losses it learns from: ``"every"`` (every time a sample is trained on;
        a reservoir re-serves samples, so most are losses on samples the model has fitted
        already) or ``"first"`` (only the first time, before any step on that sample: a
        held-out error, the generalization signal).
    """

    name: ClassVar[str] = ""
    pool_based: ClassVar[bool] = False  # scores candidates with the model (SamplerFeedback)
    SIGNALS: ClassVar[tuple[str, ...]] = ("every", "first")

    def __init__(self, space: dict[str, ParameterRange], seed: int = 0,
                 signal: str = "every") -> None:
        if not space:
            raise ValueError(f"sampler '{self.name}' needs a problem with per-sample "
                             "parameters (e.g. burgers with viscosity_range)")
        if signal not in self.SIGNALS:
            raise ValueError(f"sampler signal must be one of {', '.join(self.SIGNALS)}, got "
                             f"'{signal}'")
        self.signal = signal
        self.space, self.names, self.seed = dict(space), sorted(space), int(seed)
        self.seconds = 0.0  # time spent in propose/observe
        self.n_proposed = self.n_observed = 0
        self.sources: dict[str, int] = {}  # proposals per source ("prior", "bred", ...)
        self._lock = threading.Lock()

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index), 7919])

    def to_params(self, u: np.ndarray) -> dict[str, float]:
        """Unit coordinates to parameter values."""
        return {k: self.space[k].from_unit(float(v)) for k, v in zip(self.names, u, strict=True)}

    def to_unit(self, params: dict[str, float]) -> np.ndarray:
        """Parameter values to unit coordinates."""
        return np.array([self.space[k].to_unit(float(params[k])) for k in self.names])

    def propose(self, indices: list[int]) -> list[dict[str, float] | None]:
        """Parameters of samples ``indices`` (``None``: drawn from the prior by the problem)."""
        t0 = time.perf_counter()
        with self._lock:
            out = []
            for i in indices:
                params, source = self._propose(int(i))
                out.append(params)
                self.sources[source] = self.sources.get(source, 0) + 1
            self.n_proposed += len(indices)
            self.seconds += time.perf_counter() - t0
        return out

    def observe(self, params: list[dict[str, float]], losses: list[float]) -> None:
        """The training losses of streamed samples, with their parameters."""
        t0 = time.perf_counter()
        with self._lock:
            for p, loss in zip(params, losses, strict=True):
                if np.isfinite(loss):
                    self._observe(self.to_unit(p), float(loss))
                    self.n_observed += 1
            self.seconds += time.perf_counter() - t0

    def _propose(self, index: int) -> tuple[dict[str, float] | None, str]:
        return None, "prior"

    def _observe(self, u: np.ndarray, loss: float) -> None:
        pass

    def report(self) -> dict[str, Any]:
        """What the sampler did: its name, counts, own seconds."""
        return {"name": self.name, "signal": self.signal, "proposed": self.n_proposed,
                "observed": self.n_observed,
                "sources": dict(self.sources), "seconds": round(self.seconds, 4)}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (counts; subclasses add their memory)."""
        return {"n_proposed": self.n_proposed, "n_observed": self.n_observed,
                "sources": dict(self.sources), "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.n_proposed, self.n_observed = int(state["n_proposed"]), int(state["n_observed"])
        self.sources, self.seconds = dict(state["sources"]), float(state["seconds"])


class UniformSampler(Sampler):
    """Every sample from the problem's prior: the stream without a sampler."""

    name = "uniform"


class BreedSampler(Sampler):
    """Breed: children around the samples with the highest loss, mixed with the prior.

    Parameters
    ----------
    space, seed, signal
        See :class:`Sampler`.
    sigma
        Standard deviation of a child around its parent, in unit coordinates (0.1: a tenth of
        the range).
    start, end, breakpoint
        The bred share starts at ``start`` and reaches ``end`` after ``breakpoint``
        generations, linearly.
    period
        Proposals per generation.
    window
        Observations kept (the parents' pool): the most recent ones.
    min_observed
        No breeding before this many observations.
    oob_factor, max_oob
        A child outside the range is redrawn with ``sigma`` times ``oob_factor``, up to
        ``max_oob`` times, then takes its parent's value.
    """

    name = "breed"

    def __init__(self, space: dict[str, ParameterRange], seed: int = 0, sigma: float = 0.1,
                 start: float = 0.0, end: float = 0.7, breakpoint: int = 3, period: int = 256,
                 window: int = 512, min_observed: int = 64, oob_factor: float = 0.3,
                 max_oob: int = 5, signal: str = "every") -> None:
        super().__init__(space, seed, signal)
        if not (0 <= start <= 1 and 0 <= end <= 1):
            raise ValueError(f"breed start and end are shares in [0, 1], got {start}, {end}")
        for key, value in (("sigma", sigma), ("oob_factor", oob_factor)):
            if not value > 0:
                raise ValueError(f"breed {key} must be positive, got {value}")
        for key, value in (("breakpoint", breakpoint), ("period", period),
                           ("window", window), ("min_observed", min_observed),
                           ("max_oob", max_oob)):
            if int(value) != value or value < 1:
                raise ValueError(f"breed {key} must be a positive integer, got {value}")
        self.sigma, self.start, self.end = float(sigma), float(start), float(end)
        self.breakpoint, self.period = int(breakpoint), int(period)
        self.min_observed, self.oob_factor, self.max_oob = (int(min_observed),
                                                            float(oob_factor), int(max_oob))
        self.pool: deque[tuple[np.ndarray, float]] = deque(maxlen=int(window))

    def share(self) -> float:
        """The bred share of the current generation."""
        if self.n_observed < self.min_observed:
            return 0.0
        g = self.n_proposed // self.period
        frac = 1.0 if self.breakpoint == 1 else min(g / (self.breakpoint - 1), 1.0)
        return self.start + (self.end - self.start) * frac

    def _propose(self, index: int) -> tuple[dict[str, float] | None, str]:
        rng = self._rng(index)
        if not self.pool or rng.random() >= self.share():
            return None, "prior"
        us = np.stack([u for u, _ in self.pool])
        losses = np.array([loss for _, loss in self.pool])
        fit = losses - losses.min()
        p = fit / fit.sum() if fit.sum() > 0 else np.full(len(fit), 1 / len(fit))
        parent = us[rng.choice(len(us), p=p)]
        sigma = self.sigma
        for _ in range(self.max_oob + 1):
            child = parent + sigma * rng.standard_normal(len(parent))
            if ((child >= 0) & (child <= 1)).all():
                return self.to_params(child), "bred"
            sigma *= self.oob_factor
        return self.to_params(parent), "bred"

    def _observe(self, u: np.ndarray, loss: float) -> None:
        self.pool.append((u, loss))

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"pool": [(u.tolist(), loss) for u, loss in self.pool]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pool.clear()
        self.pool.extend((np.asarray(u, float), float(loss)) for u, loss in state["pool"])


class HardnessSampler(Sampler):
    """pdeml's own: a per-cell map of the training loss, sampled in proportion, above a floor.

    A smoothed map of the training loss over the parameter range, sampled in proportion to
    the loss, with a share (the floor) drawn from the prior.

    The unit cube is cut into ``bins`` cells per parameter. Each cell keeps an exponential
    moving average of the training losses observed in it (a cell never observed counts as
    the largest average, so it gets explored). A proposal is drawn from the prior with
    probability ``floor``; otherwise a cell is chosen with probability proportional to its
    average to the power ``beta`` and the parameters drawn uniformly inside it.

    Why not Breed's parents-and-children: Breed follows individual high-loss samples, so its
    draws collapse on a few points and the rest of the range is left to the uniform share
    (OGAS measured its mean error 8% worse than uniform). A per-cell average follows where the
    loss is high *on average* and keeps every cell's probability above ``floor / cells``,
    which is meant to lower the tail without giving up the mean (issue 30's target); the
    benchmark decides (``scripts/bench_active.py``).

    Parameters
    ----------
    space, seed, signal
        See :class:`Sampler`.
    bins
        Cells per parameter (at most 4096 cells in all).
    floor
        Share of proposals drawn from the prior.
    beta
        Exponent on a cell's average loss.
    decay
        Weight of the old average when a loss arrives (0.9: about the last 10 observations).
    min_observed
        Proposals come from the prior until this many observations.
    """

    name = "hardness"

    def __init__(self, space: dict[str, ParameterRange], seed: int = 0, bins: int = 16,
                 floor: float = 0.3, beta: float = 1.0, decay: float = 0.9,
                 min_observed: int = 64, signal: str = "every") -> None:
        super().__init__(space, seed, signal)
        if int(bins) != bins or bins < 1 or bins ** len(space) > 4096:
            raise ValueError(f"hardness bins must be a positive integer with bins^dims <= "
                             f"4096, got {bins}")
        for key, value, lo, hi in (("floor", floor, 0.0, 1.0), ("decay", decay, 0.0, 1.0)):
            if not lo <= value <= hi:
                raise ValueError(f"hardness {key} must be in [{lo}, {hi}], got {value}")
        if not beta > 0:
            raise ValueError(f"hardness beta must be positive, got {beta}")
        if int(min_observed) != min_observed or min_observed < 0:
            raise ValueError(f"hardness min_observed must be >= 0, got {min_observed}")
        self.bins, self.floor, self.beta = int(bins), float(floor), float(beta)
        self.decay, self.min_observed = float(decay), int(min_observed)
        self.avg = np.full(self.bins ** len(self.names), np.nan)

    def _cell(self, u: np.ndarray) -> int:
        k = np.minimum((np.asarray(u) * self.bins).astype(int), self.bins - 1)
        return int(np.ravel_multi_index(tuple(k), (self.bins,) * len(self.names)))

    def _propose(self, index: int) -> tuple[dict[str, float] | None, str]:
        rng = self._rng(index)
        if self.n_observed < self.min_observed or rng.random() < self.floor:
            return None, "prior"
        seen = np.isfinite(self.avg)
        w = np.where(seen, self.avg, np.nanmax(self.avg) if seen.any() else 1.0)
        w = np.maximum(w, 0.0) ** self.beta
        p = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
        cell = rng.choice(len(p), p=p)
        corner = np.array(np.unravel_index(cell, (self.bins,) * len(self.names)), float)
        return self.to_params((corner + rng.random(len(corner))) / self.bins), "hard"

    def _observe(self, u: np.ndarray, loss: float) -> None:
        c = self._cell(u)
        old = self.avg[c]
        self.avg[c] = loss if np.isnan(old) else self.decay * old + (1 - self.decay) * loss

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"avg": [None if np.isnan(v) else float(v)
                                               for v in self.avg]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.avg = np.array([np.nan if v is None else v for v in state["avg"]], float)


class TiltedSampler(Sampler):
    """A fixed density over the range: the plain baseline for where a user knows it is hard.

    The unit interval of each parameter is cut into ``len(weights)`` equal bins; a proposal
    picks a bin with probability proportional to its weight (per parameter, independently)
    and draws uniformly inside it. ``weights: [4, 2, 1]`` sends 4/7 of the samples to the
    lowest third of the range (of ``log nu`` for Burgers' log-uniform viscosity). It learns
    nothing: an active sampler has to beat it to show that steering pays.

    Parameters
    ----------
    space, seed, signal
        See :class:`Sampler` (no signal is used).
    weights
        Relative weights of equal bins of the unit interval (non-negative, not all zero).
    """

    name = "tilted"

    def __init__(self, space: dict[str, ParameterRange], seed: int = 0,
                 weights: list[float] | tuple[float, ...] = (4.0, 2.0, 1.0),
                 signal: str = "every") -> None:
        super().__init__(space, seed, signal)
        w = np.asarray(weights, float) if isinstance(weights, list | tuple) else np.array([])
        if w.ndim != 1 or len(w) < 1 or not np.isfinite(w).all() or (w < 0).any() \
                or w.sum() <= 0:
            raise ValueError(f"tilted weights must be a list of non-negative numbers, not all "
                             f"zero, got {weights!r}")
        self.weights = w / w.sum()

    def _propose(self, index: int) -> tuple[dict[str, float] | None, str]:
        rng = self._rng(index)
        n = len(self.weights)
        bins = rng.choice(n, size=len(self.names), p=self.weights)
        return self.to_params((bins + rng.random(len(self.names))) / n), "tilted"


class SBALSampler(Sampler):
    """SBAL (AL4PDE): candidates drawn in proportion to a 2-model ensemble's disagreement.

    Each sample's parameters come from a pool of candidates, one drawn with probability
    proportional to ``uncertainty ** beta``.

    The scoring happens in the trainer, between optimizer steps
    (:class:`~pdeml.datasets.online.SamplerFeedback`): for each stream index the feeder will
    ask for next, the callback draws the index's inputs for each of ``pool`` candidate
    parameter sets (:meth:`candidates`, :meth:`~pdeml.solvers.problems.base.Problem.
    stored_inputs`), predicts them with the trained model and with a second ensemble
    member that the callback trains on the same batches, and hands the uncertainties to
    :meth:`choose`. A proposal takes the prepared choice, or the prior where none is ready
    (before ``min_steps`` optimizer steps, or when the feeder outruns the scoring).

    Where pdeml follows AL4PDE (``dmusekamp/al4pde``: ``acquisition/uncertainty_based.py``,
    ``prob_models/ensemble.py``): two members trained in sync on the same batches; the
    uncertainty of a candidate is the members' mean loss against the ensemble mean (their
    ``adapt_unc_to_loss``; pdeml's loss here is the relative L2), averaged over the output;
    selection by ``power`` sampling with ``beta = 1``. Where it departs: AL4PDE retrains both
    members from scratch in rounds and scores a pool of 100k random (initial condition,
    parameter) pairs; in the stream the members keep training, and a pool holds ``pool``
    parameter sets for the initial condition of the stream index being chosen, so a sample
    stays a pure function of ``(seed, split, index, parameters)``; one sample is chosen per
    index (AL4PDE draws a whole batch without replacement from one pool). The second
    member's training and the scoring count as the sampler's own time (``overhead``); a
    resumed run restarts the second member (it is not in the checkpoint).

    Parameters
    ----------
    space, seed, signal
        See :class:`Sampler` (the training-loss signal is not used).
    pool
        Candidate parameter sets per stream index, drawn from the prior.
    beta
        Exponent on the uncertainty (AL4PDE's ``power_beta``).
    lookahead
        Stream indices prepared ahead of the feeder.
    refresh
        A prepared choice older than this many optimizer steps is scored again.
    min_steps
        Optimizer steps before the ensemble chooses (earlier proposals: the prior).
    member_every
        Train the second member on every ``member_every``-th batch (1: every batch, as AL4PDE).
    """

    name = "sbal"
    pool_based: ClassVar[bool] = True

    def __init__(self, space: dict[str, ParameterRange], seed: int = 0, pool: int = 64,
                 beta: float = 1.0, lookahead: int = 32, refresh: int = 100,
                 min_steps: int = 200, member_every: int = 1, signal: str = "every") -> None:
        super().__init__(space, seed, signal)
        for key, value in (("pool", pool), ("lookahead", lookahead), ("refresh", refresh),
                           ("member_every", member_every)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"sbal {key} must be a positive integer, got {value}")
        if isinstance(min_steps, bool) or int(min_steps) != min_steps or min_steps < 0:
            raise ValueError(f"sbal min_steps must be an integer >= 0, got {min_steps}")
        if not beta > 0:
            raise ValueError(f"sbal beta must be positive, got {beta}")
        self.pool, self.beta, self.lookahead = int(pool), float(beta), int(lookahead)
        self.refresh, self.min_steps = int(refresh), int(min_steps)
        self.member_every = int(member_every)
        self.ready: dict[int, tuple[dict[str, float], int]] = {}  # index -> (params, step)
        self.scored = 0  # candidates scored

    def candidates(self, index: int) -> np.ndarray:
        """The pool of stream index ``index``: ``(pool, dims)`` unit coordinates."""
        rng = np.random.default_rng([self.seed, int(index), 104729])
        return rng.random((self.pool, len(self.names)))

    def stale(self, indices: list[int], step: int) -> list[int]:
        """Those of ``indices`` with no choice prepared at ``step`` or later minus ``refresh``."""
        with self._lock:
            return [i for i in indices
                    if i not in self.ready or step - self.ready[i][1] >= self.refresh]

    def choose(self, index: int, candidates: np.ndarray, uncertainty: np.ndarray,
               step: int, seconds: float = 0.0) -> dict[str, float]:
        """Draw index ``index``'s parameters from its scored pool (probability proportional to
        ``uncertainty ** beta``) and keep them for its proposal; ``seconds``: the scoring's
        time, counted as the sampler's own."""
        u = np.nan_to_num(np.maximum(np.asarray(uncertainty, float), 0.0)) ** self.beta
        p = u / u.sum() if u.sum() > 0 else np.full(len(u), 1 / len(u))
        rng = np.random.default_rng([self.seed, int(index), step, 15485863])
        params = self.to_params(candidates[rng.choice(len(p), p=p)])
        with self._lock:
            self.ready[int(index)] = (params, int(step))
            self.scored += len(u)
            self.seconds += seconds
        return params

    def add_seconds(self, seconds: float) -> None:
        """Time the trainer spent for this sampler (the second member's training)."""
        with self._lock:
            self.seconds += seconds

    def _propose(self, index: int) -> tuple[dict[str, float] | None, str]:
        if index in self.ready:
            return self.ready.pop(index)[0], "sbal"
        return None, "prior"

    def report(self) -> dict[str, Any]:
        return super().report() | {"scored": self.scored}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"ready": [[i, p, s] for i, (p, s) in self.ready.items()],
                                       "scored": self.scored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ready = {int(i): (dict(p), int(s)) for i, p, s in state["ready"]}
        self.scored = int(state["scored"])


SAMPLERS: dict[str, type[Sampler]] = {"uniform": UniformSampler, "breed": BreedSampler,
                                      "hardness": HardnessSampler, "sbal": SBALSampler,
                                      "tilted": TiltedSampler}


def make_sampler(spec: str | dict[str, Any] | None, space: dict[str, ParameterRange],
                 seed: int = 0) -> Sampler | None:
    """A sampler from ``data.online.sampler``: a name or ``{name: breed, sigma: 0.1, ...}``.

    Parameters
    ----------
    spec
        The setting; ``None`` means no sampler (the prior, as ``uniform``).
    space
        The problem's per-sample parameters.
    seed
        The stream's seed.

    Returns
    -------
    Sampler or None
    """
    if spec is None:
        return None
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", None)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; use one of {', '.join(SAMPLERS)}")
    try:
        return SAMPLERS[name](space, seed=seed, **options)
    except TypeError as err:
        raise ValueError(f"sampler '{name}': {err}") from None
