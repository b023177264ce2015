from libs.common.kafka.offsets import PartitionOffsets


def test_commit_position_waits_for_the_oldest_unfinished_record() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.take(offset)
    offsets.finish(12)
    offsets.finish(11)
    assert offsets.position is None  # 10 is still running
    offsets.finish(10)
    assert offsets.position == 13
    assert offsets.in_flight == 1
    offsets.finish(13)
    assert offsets.position == 14
    assert offsets.in_flight == 0


def test_gaps_in_offsets_do_not_block_commits() -> None:
    offsets = PartitionOffsets()
    for offset in (5, 9, 20):
        offsets.take(offset)
    offsets.finish(9)
    offsets.finish(5)
    assert offsets.position == 10
    offsets.finish(20)
    assert offsets.position == 21
