"""bench.timing: network calls counted by a hook on the model's network, and the paper's timing record."""

import torch

from bench import timing
from bench.registry import build_model


def test_network_calls_are_counted_by_a_hook():
    model = build_model("ddpm", preset_name="tiny")
    assert timing.count_calls(model, lambda: model.sample(3, 7, seed=0)) == 7
    record = timing.paper_time(model, 5, torch.device("cpu"), batch=4, rounds=2)
    assert record.nfe == 5 and len(record.seconds_all) == 2 and record.seconds > 0 and record.batch == 4
    assert record.min_seconds == min(record.seconds_all) and record.iqr_seconds >= 0
    assert record.load is not None and record.load["cpus"] >= 1


def test_nfe_is_one_batchs_calls_even_where_the_first_use_builds_something(monkeypatch):
    """A CUDA-graph setting warms up and captures on its first batch of a size (3 passes of T calls) before it
    replays: the count is the replay's T, not the 4T of the first call."""
    model, built = build_model("ddpm", preset_name="tiny"), set()
    sample = type(model).sample

    def first_use_runs_three_more_passes(self, n, steps, seed=0):
        if n not in built:
            built.add(n)
            for _ in range(3):
                sample(self, n, steps, seed=seed)
        return sample(self, n, steps, seed=seed)

    monkeypatch.setattr(type(model), "sample", first_use_runs_three_more_passes)
    assert timing.paper_time(model, 5, torch.device("cpu"), batch=4, rounds=1).nfe == 5


def test_timing_noise_flags_spread_rounds_a_busy_machine_and_steal():
    """The rounds of a DDIM-20 cell timed beside other work (issue 18): median 0.093 s, IQR 0.938 s."""
    rounds = [0.976, 0.964, 0.093, 0.023, 0.026]
    iqr = timing.interquartile_range(rounds)
    assert abs(iqr - 0.938) < 1e-9
    idle = {"loadavg_1m": 1.0, "cpus": 2, "steal_fraction": 0.0}
    assert timing.noise(0.093, iqr, idle).startswith("rounds spread: IQR 1009% of the median")
    steady = [0.101, 0.1, 0.102, 0.099, 0.1]
    assert timing.noise(0.1, timing.interquartile_range(steady), idle) is None
    busy = {"loadavg_1m": 4.2, "cpus": 2, "steal_fraction": 0.2}
    assert timing.noise(0.1, 0.0, busy) == "busy machine: load 4.2 on 2 CPUs; CPU steal 20%"
    assert timing.interquartile_range([0.5]) == 0.0
