import pytest

from chorus.ids import IdGenerator, id_time_ms, is_id


def test_ids_increase_and_carry_their_time() -> None:
    now = [1_700_000_000_000]
    gen = IdGenerator("us-east.0", clock=lambda: now[0])
    a, b = gen.next(), gen.next()
    now[0] += 1
    c = gen.next()
    assert a < b < c
    assert id_time_ms(a) == id_time_ms(b) == 1_700_000_000_000
    assert id_time_ms(c) == 1_700_000_000_001
    assert is_id(a) and a.endswith("-us-east.0")


def test_clock_going_back_never_reorders() -> None:
    now = [1_000_000]
    gen = IdGenerator("eu-west.1", clock=lambda: now[0])
    first = gen.next()
    now[0] -= 500
    assert gen.next() > first


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    gen = IdGenerator("ap-south.0", clock=lambda: 5)
    ids = [gen.next() for _ in range(70_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert id_time_ms(ids[-1]) == 6


def test_nodes_never_collide_and_sort_by_time_first() -> None:
    a = IdGenerator("us-east.0", clock=lambda: 10).next()
    b = IdGenerator("eu-west.0", clock=lambda: 10).next()
    c = IdGenerator("ap-south.0", clock=lambda: 11).next()
    assert a != b and max(a, b) < c


@pytest.mark.parametrize("bad", ["", "x", "0000000000zz0000-us-east.0", "00000000000a0000-US.0"])
def test_not_an_id(bad: str) -> None:
    assert not is_id(bad)
    with pytest.raises(ValueError):
        id_time_ms(bad)


def test_node_name_is_checked() -> None:
    with pytest.raises(ValueError):
        IdGenerator("us east")
