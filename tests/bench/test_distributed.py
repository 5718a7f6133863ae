"""bench.distributed: how samples are split between processes (the gathering itself runs in test_trilemma's
two-process test)."""

import torch

from bench import distributed
from bench.distributed import World
from bench.metrics import extractors as fe
from bench.metrics.features import extract
from bench.sample import draw


def test_world_shards_cover_every_index_once_on_batch_boundaries():
    for n, size, align in [(200, 2, 50), (1001, 3, 100), (7, 4, 1), (30, 4, 50)]:
        parts = [World(r, size).shard(n, align) for r in range(size)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert all(p.start % align == 0 or p.start == n for p in parts)


def test_a_rank_with_an_empty_shard_draws_and_embeds_nothing_and_gather_leaves_it_out(monkeypatch):
    """With fewer batches than processes (n=100, batch 100, 2 ranks) rank 0's shard is empty: it draws an empty
    tensor and extracts empty features with the same keys as the other rank, and gather joins only the others."""
    assert World(0, 2).shard(100, 100) == slice(0, 0)
    empty = draw(None, 0, 4, 0, 100, True)
    other = torch.randn(100, 3, 8, 8)
    monkeypatch.setattr(distributed.dist, "all_gather_object", lambda parts, part: parts.__setitem__(
        slice(None), [part, other]))
    torch.testing.assert_close(World(0, 2).gather(empty), other, atol=0, rtol=0)
    module = fe.build("digits-cnn")
    assert set(extract(torch.zeros(0, 3, 8, 8), module, "digits-cnn")) == set(
        extract(torch.zeros(2, 3, 8, 8), module, "digits-cnn")) == {"features", "logits"}
