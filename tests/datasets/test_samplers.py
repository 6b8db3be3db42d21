"""Active samplers (issue 30): proposals, Breed's mechanics, the stream solving what they
choose, and the trainer's per-sample losses coming back to them."""

import time

import numpy as np
import pytest
import torch

from pdeml.datasets.samplers import (
    BreedSampler,
    HardnessSampler,
    SBALSampler,
    TiltedSampler,
    UniformSampler,
    make_sampler,
)
from pdeml.datasets.stream import SampleBuffer, StreamExhausted, StreamFeeder
from pdeml.solvers.problems.base import ParameterRange
from pdeml.solvers.problems.burgers import Burgers

SPACE = {"viscosity": ParameterRange(1e-2, 1e-1, "log")}
# a quick Burgers family: nu log-uniform in [1e-2, 1e-1], 32 stored points
BURGERS = {"resolution": 32, "solver_resolution": 128, "final_time": 0.05, "n_snapshots": 1,
           "dt": 1e-3, "n_terms": 9, "viscosity_range": [1e-2, 1e-1]}


def _feed(sampler, losses_at):
    """Observe 200 samples spread over the range with the loss ``losses_at(u)``."""
    us = np.linspace(0, 1, 200)
    sampler.observe([sampler.to_params([u]) for u in us], [losses_at(u) for u in us])


def test_uniform_leaves_every_draw_to_the_problem():
    s = UniformSampler(SPACE)
    assert s.propose([0, 1, 2]) == [None, None, None]
    assert s.report()["sources"] == {"prior": 3}


def test_breed_children_gather_where_the_loss_is_high():
    s = BreedSampler(SPACE, seed=0, period=10, breakpoint=2, end=1.0, min_observed=10)
    assert s.propose(list(range(5))) == [None] * 5  # nothing observed yet: the prior
    _feed(s, lambda u: 1.0 + 10.0 * float(abs(u - 0.2) < 0.05))  # a narrow hard region
    s.propose(list(range(5, 15)))  # past the first generation: share 1.0
    assert s.share() == 1.0
    kids = [p for p in s.propose(list(range(100, 400))) if p is not None]
    u = np.array([s.to_unit(p)[0] for p in kids])
    assert len(kids) == 300 and ((u >= 0) & (u <= 1)).all()
    # nearly all parents come from the hard region (fitness = loss - min), children within
    # a few sigma (0.1) of it
    assert np.median(np.abs(u - 0.2)) < 0.12 and np.mean(np.abs(u - 0.2) < 0.3) > 0.9


def test_breed_is_deterministic_given_its_signals_and_survives_a_checkpoint():
    a, b = (BreedSampler(SPACE, seed=3, period=8, min_observed=8) for _ in range(2))
    for s in (a, b):
        _feed(s, lambda u: float(np.sin(7 * u) ** 2))
        s.propose(list(range(30)))
    assert a.propose(list(range(30, 60))) == b.propose(list(range(30, 60)))
    c = BreedSampler(SPACE, seed=3, period=8, min_observed=8)
    c.load_state_dict(a.state_dict())
    assert c.propose(list(range(60, 90))) == a.propose(list(range(60, 90)))


def test_breed_share_ramps_from_start_to_end():
    s = BreedSampler(SPACE, start=0.0, end=0.7, breakpoint=3, period=4, min_observed=1)
    _feed(s, lambda u: u)
    shares = []
    for g in range(5):
        shares.append(s.share())
        s.propose([10 * g + k for k in range(4)])
    assert shares == pytest.approx([0.0, 0.35, 0.7, 0.7, 0.7])


def test_hardness_follows_the_average_loss_and_keeps_its_floor():
    s = HardnessSampler(SPACE, seed=1, bins=10, floor=0.3, min_observed=10)
    assert s.propose([0]) == [None]  # nothing observed: the prior
    _feed(s, lambda u: 1.0 + 9.0 * float(u >= 0.8))  # the top two cells are 10x harder
    props = s.propose(list(range(1, 2001)))
    prior = sum(p is None for p in props) / len(props)
    u = np.array([s.to_unit(p)[0] for p in props if p is not None])
    assert abs(prior - 0.3) < 0.05  # the floor
    # cells chosen in proportion to the average: 2 x 10 / (2 x 10 + 8 x 1) = 0.71 in [0.8, 1]
    assert abs((u >= 0.8).mean() - 20 / 28) < 0.05 and ((u >= 0) & (u <= 1)).all()
    c = HardnessSampler(SPACE, seed=1, bins=10, floor=0.3, min_observed=10)
    c.load_state_dict(s.state_dict())
    assert c.propose(list(range(3000, 3050))) == s.propose(list(range(3000, 3050)))


def test_hardness_explores_cells_it_has_not_seen():
    s = HardnessSampler(SPACE, seed=0, bins=4, floor=0.0, min_observed=1)
    s.observe([s.to_params([0.1])], [1.0])  # one cell seen, three not: they count as max
    u = np.array([s.to_unit(p)[0] for p in s.propose(list(range(400)))])
    assert all(((u >= a) & (u < a + 0.25)).mean() > 0.15 for a in (0, 0.25, 0.5, 0.75))


def test_sbal_draws_in_proportion_to_the_uncertainty_and_keeps_its_choice():
    s = SBALSampler(SPACE, seed=2, pool=8)
    cands = s.candidates(5)
    assert cands.shape == (8, 1) and np.array_equal(cands, s.candidates(5))  # (seed, index)
    assert not np.array_equal(cands, s.candidates(6))
    assert s.propose([5]) == [None]  # nothing scored: the prior
    unc = np.zeros(8)
    unc[3] = 1.0  # one candidate disagrees, the others not at all
    chosen = s.choose(5, cands, unc, step=10, seconds=0.5)
    assert chosen == s.to_params(cands[3]) and 0.5 <= s.seconds < 0.6  # + its own time
    assert s.stale([5, 6], step=50) == [6] and s.stale([5], step=110) == [5]  # refresh 100
    c = SBALSampler(SPACE, seed=2, pool=8)
    c.load_state_dict(s.state_dict())
    assert c.propose([5]) == s.propose([5]) == [chosen]
    assert s.report()["sources"] == {"prior": 1, "sbal": 1} and s.propose([5]) == [None]
    # beta = 1: frequencies follow the uncertainties (1:3 over two candidates)
    picks = [s.choose(i, np.array([[0.1], [0.9]]), np.array([1.0, 3.0]), step=0)
             for i in range(2000)]
    share = np.mean([p["viscosity"] > SPACE["viscosity"].from_unit(0.5) for p in picks])
    assert abs(share - 0.75) < 0.04
    assert s.choose(1, cands, np.zeros(8), step=0) in [s.to_params(u) for u in cands]


def test_tilted_follows_its_fixed_weights():
    s = TiltedSampler(SPACE, seed=4, weights=[4, 2, 1])
    u = np.array([s.to_unit(p)[0] for p in s.propose(list(range(3000)))])
    shares = [((u >= a / 3) & (u < (a + 1) / 3)).mean() for a in range(3)]
    assert np.allclose(shares, [4 / 7, 2 / 7, 1 / 7], atol=0.03)
    assert s.propose([7]) == TiltedSampler(SPACE, seed=4, weights=[4, 2, 1]).propose([7])
    for bad in ([], [-1, 2], [0, 0], "4 2 1"):
        with pytest.raises(ValueError, match="tilted weights must be"):
            TiltedSampler(SPACE, weights=bad)


def test_burgers_draws_its_inputs_without_solving_as_the_sample_does():
    from pdeml.datasets.writer import sample_rng

    problem = Burgers(**BURGERS)
    for params in (None, {"viscosity": 0.05}):
        drawn = problem.stored_inputs(sample_rng(0, "train", 3), params)
        full = problem.sample_with(sample_rng(0, "train", 3), params)
        assert np.array_equal(drawn["u0"], full["u0"])
        assert drawn["viscosity"] == full["viscosity"]
    assert problem.stored_inputs(sample_rng(0, "train", 3), {"viscosity": 0.05}
                                    )["viscosity"] == 0.05
    with pytest.raises(ValueError, match="no per-sample parameters"):
        Burgers(resolution=32, n_terms=9).stored_inputs(sample_rng(0, "train", 3),
                                                           {"viscosity": 0.05})


def test_linear_problems_draw_their_stored_inputs_without_solving():
    from pdeml.datasets.writer import sample_rng
    from pdeml.solvers.problems.darcy import DarcyFlow
    from pdeml.solvers.problems.helmholtz import Helmholtz

    for problem, params in (
            (DarcyFlow(resolution=9, solver_resolution=17, contrast_range=[2, 100]),
             {"contrast": 30.0}),
            (Helmholtz(resolution=16, k0_range=[2, 12]), {"k0": 7.0})):
        (name,) = problem.parameter_space()
        for p in (None, params):
            drawn = problem.stored_inputs(sample_rng(1, "train", 4), p)
            full = problem.sample_with(sample_rng(1, "train", 4), p)
            for v in problem.input_vars:  # the stored grid (Darcy: every 2nd solver node)
                assert drawn[v].shape == full[v].shape and np.array_equal(drawn[v], full[v])
            assert drawn[name] == full[name]
        assert drawn[name] == params[name]


def test_bad_settings_are_refused_in_one_line():
    for spec, match in (("greedy", "unknown sampler 'greedy'"),
                        ({"name": "breed", "sigma": -1}, "sigma must be positive"),
                        ({"name": "breed", "end": 1.5}, "shares in"),
                        ({"name": "breed", "colour": 1}, "sampler 'breed'"),
                        ({"name": "hardness", "floor": 2}, "floor must be in"),
                        ({"name": "hardness", "bins": 0}, "bins must be"),
                        ({"name": "breed", "signal": "last"}, "signal must be one of"),
                        ({"name": "sbal", "pool": 0}, "pool must be a positive integer"),
                        ({"name": "sbal", "beta": 0}, "beta must be positive"),
                        ({"name": "sbal", "min_steps": -1}, "min_steps must be")):
        with pytest.raises(ValueError, match=match):
            make_sampler(spec, SPACE)
    with pytest.raises(ValueError, match="per-sample parameters"):
        make_sampler("breed", {})
    assert make_sampler(None, SPACE) is None


@pytest.mark.timeout(300)
def test_the_stream_solves_the_chosen_parameters_and_keeps_them(client):
    problem = Burgers(**BURGERS)
    sampler = BreedSampler(problem.parameter_space(), period=4, min_observed=4, end=1.0,
                           breakpoint=1)
    _feed(sampler, lambda u: float(u > 0.8))  # hard: high viscosity end
    buffer = SampleBuffer("fifo", 64, 1)
    feeder = StreamFeeder(client, problem, buffer, ["u0", "viscosity"], ["u[-1]"], seed=0,
                          chunk=3, max_in_flight=2, max_samples=12, sampler=sampler).start()
    got = [buffer.get(timeout=120) for _ in range(12)]
    feeder.stop()
    indices = [i for i, _, _ in got]
    solved = feeder.params_of(indices)
    for (_, x, _), p in zip(got, solved, strict=True):
        assert p is not None and np.isclose(float(x[1, 0]), p["viscosity"], rtol=1e-6)
    nu = np.array([p["viscosity"] for p in solved])
    assert (nu > SPACE["viscosity"].from_unit(0.5)).mean() > 0.8  # bred near the hard end
    # the chosen parameters are what a direct computation of those samples gives
    from pdeml.datasets.writer import compute_samples

    direct = compute_samples(problem, 0, "train", indices[:2], params=solved[:2])
    assert torch.allclose(got[1][1][0], torch.from_numpy(direct["u0"][1]).float())
    assert np.allclose(direct["viscosity"], nu[:2])
    with pytest.raises(ValueError, match="closed loop"):
        StreamFeeder(client, problem, buffer, ["u0"], ["u[-1]"], sampler=sampler,
                     task=lambda: (None, ()))


def _train_config(tmp_path, online, epochs):
    """A tiny ``pdeml train`` config streaming the quick Burgers family (its test file made
    here), with the stream settings ``online``."""
    from pdeml.datasets import generate_dataset

    generate_dataset(Burgers(**BURGERS), tmp_path / "data", {"test": 8}, seed=5, progress=False)
    return {
        "seed": 0,
        "data": {
            "online": {"problem": "burgers", "options": BURGERS, "n_workers": 1,
                       "norm_samples": 8, **online},
            "test": str(tmp_path / "data" / "test.h5"), "batch_size": 4,
            "inputs": ["u0", "viscosity"], "outputs": ["u[-1]"],
        },
        "model": {"name": "FNO", "n_modes": [4], "hidden_channels": 8, "n_layers": 1},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "logger": False},
    }


@pytest.mark.timeout(600)
def test_training_feeds_every_batch_back_to_the_sampler(tmp_path):
    """pdeml train with data.online.sampler: the trainer's per-sample losses reach Breed with
    the parameters each sample was solved with, and the report prices the sampler."""
    import json

    from pdeml.trainers.fit import train

    cfg = _train_config(tmp_path, {
        "buffer": "fifo", "capacity": 32, "watermark": 8, "batches_per_epoch": 4,
        "sampler": {"name": "breed", "period": 8, "min_observed": 8}}, epochs=3)
    train(cfg, tmp_path / "run")
    gen = json.loads((tmp_path / "run" / "metrics.json").read_text())["cost"]["generation"]
    rep = gen["sampler"]
    assert rep["name"] == "breed" and rep["feedback_batches"] == 12
    assert rep["unmatched_batches"] == 0 and rep["observed"] == 48  # 3 epochs x 4 x 4
    assert rep["proposed"] >= 48 and rep["sources"].get("bred", 0) > 0  # it bred once fed
    assert 0 < rep["overhead"] < 1 and rep["solver_seconds"] > 0
    # signal "first": each streamed sample reported once, with its loss before any step on it
    cfg["data"]["online"]["sampler"]["signal"] = "first"
    cfg["data"]["online"]["buffer"] = "reservoir"  # samples served again and again
    cfg["data"]["online"] |= {"capacity": 16, "watermark": 8, "max_samples": 16}
    train(cfg, tmp_path / "run_first")
    rep = json.loads((tmp_path / "run_first" / "metrics.json").read_text()
                     )["cost"]["generation"]["sampler"]
    assert rep["signal"] == "first" and rep["feedback_batches"] == 12
    # 48 losses of at most 16 distinct samples (drawn with repetition): one report each
    assert 8 <= rep["observed"] <= 16


@pytest.mark.timeout(300)
def test_a_paced_stream_waits_for_the_trainer_then_finishes(client):
    problem = Burgers(**BURGERS)
    buffer = SampleBuffer("fifo", 64, 1)
    feeder = StreamFeeder(client, problem, buffer, ["u0", "viscosity"], ["u[-1]"], seed=0,
                          chunk=3, max_in_flight=2, max_samples=10, allowed=4).start()
    got = [buffer.get(timeout=120) for _ in range(4)]
    time.sleep(0.5)  # room to run ahead, which it must not take
    assert feeder.next_k == 4 and len(buffer) == 0 and not buffer.closed and feeder.alive
    feeder.allow(2)  # never lowers the limit
    assert feeder.allowed == 4
    feeder.allow(10)
    got += [buffer.get(timeout=120) for _ in range(6)]
    with pytest.raises(StreamExhausted):  # then a finite stream ends as without pacing
        buffer.get(timeout=120)
    feeder.stop()
    assert [i for i, _, _ in got] == list(range(10))


def test_pace_releases_the_budget_over_its_share_of_the_steps():
    from types import SimpleNamespace

    from pdeml.datasets.online import OnlineDataModule, StreamPace

    dm = SimpleNamespace(stream={"max_samples": 100, "pace_start": 20, "pace": 0.5})
    pace = StreamPace(dm)
    assert [pace.allowed(s, 1000) for s in (0, 1, 250, 499, 500, 900)] == [20, 21, 60, 100,
                                                                           100, 100]
    for bad, match in ((0, "pace must be a share"), (1.5, "pace must be a share"),
                       (True, "pace must be a share")):
        with pytest.raises(ValueError, match=match):
            OnlineDataModule("burgers", BURGERS, max_samples=10, buffer="reservoir",
                             pace=bad)
    with pytest.raises(ValueError, match="needs max_samples"):
        OnlineDataModule("burgers", BURGERS, buffer="reservoir", pace=0.5)
    with pytest.raises(ValueError, match="buffer: reservoir"):
        OnlineDataModule("burgers", BURGERS, max_samples=10, buffer="fifo", pace=0.5)


@pytest.mark.timeout(600)
def test_sbal_scores_between_steps_and_steers_a_paced_stream(tmp_path):
    """pdeml train with sbal and pace: the second member trains, the pools are scored between
    optimizer steps, and the samples released after min_steps are sbal's choices."""
    import json

    import h5py

    from pdeml.trainers.fit import train

    cfg = _train_config(tmp_path, {
        "buffer": "reservoir", "capacity": 24, "watermark": 8, "max_samples": 24, "pace": 0.5,
        "batches_per_epoch": 10, "tee": str(tmp_path / "stream.h5"),
        "sampler": {"name": "sbal", "min_steps": 5, "pool": 16, "lookahead": 4}}, epochs=4)
    train(cfg, tmp_path / "run")
    rep = json.loads((tmp_path / "run" / "metrics.json").read_text()
                     )["cost"]["generation"]["sampler"]
    assert rep["name"] == "sbal" and rep["proposed"] == 24 and rep["scored"] >= 16 * 8
    # released at steps 5..20 of 40 (pace 0.5), after the ensemble started choosing
    assert rep["sources"].get("sbal", 0) >= 8 and rep["overhead"] > 0
    with h5py.File(tmp_path / "stream.h5") as f:
        nu = np.asarray(f["viscosity"][:])
    assert len(nu) == 24 and ((nu >= 1e-2) & (nu <= 1e-1)).all()
