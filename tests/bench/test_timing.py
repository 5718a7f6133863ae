"""bench.timing: network calls counted by a hook on the model's network, and the paper's timing record."""

import torch

from bench import timing
from bench.registry import build_model


def test_network_calls_are_counted_by_a_hook():
    model = build_model("ddpm", preset_name="tiny")
    assert timing.count_calls(model, lambda: model.sample(3, 7, seed=0)) == 7
    record = timing.paper_time(model, 5, torch.device("cpu"), batch=4, rounds=2)
    assert record.nfe == 5 and len(record.seconds_all) == 2 and record.seconds > 0 and record.batch == 4
