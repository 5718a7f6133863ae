"""bench.distributed: how samples are split between processes (the gathering itself runs in test_trilemma's
two-process test)."""

from bench.distributed import World


def test_world_shards_cover_every_index_once_on_batch_boundaries():
    for n, size, align in [(200, 2, 50), (1001, 3, 100), (7, 4, 1), (30, 4, 50)]:
        parts = [World(r, size).shard(n, align) for r in range(size)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert all(p.start % align == 0 or p.start == n for p in parts)
