"""Ids are ULIDs after a prefix: they decode to the time they were made, and sort by it."""

import time

import pytest

from orgmail.ids import new_id

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decoded(body: str) -> int:
    value = 0
    for char in body:
        value = value * 32 + _ALPHABET.index(char)
    return value


def test_an_id_is_its_prefix_and_26_crockford_characters_that_decode_to_its_millisecond():
    before = time.time_ns() // 1_000_000
    made = new_id("msg")
    after = time.time_ns() // 1_000_000
    prefix, body = made.split("_")
    assert prefix == "msg" and len(body) == 26 and set(body) <= set(_ALPHABET)
    assert before <= _decoded(body[:10]) <= after
    assert _decoded(body) >> 80 == _decoded(body[:10])


def test_ids_made_one_after_another_sort_in_that_order_and_differ():
    made = [new_id("evt") for _ in range(5000)]  # many within one millisecond
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(_decoded(b.split("_")[1]) > _decoded(a.split("_")[1]) for a, b in zip(made, made[1:], strict=False))


def test_an_unknown_prefix_is_refused():
    with pytest.raises(ValueError):
        new_id("xyz")
