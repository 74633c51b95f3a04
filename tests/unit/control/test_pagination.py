"""The one page-size rule and page token of control's listings."""

import pytest

from services.control.errors import InvalidArgument
from services.control.pagination import (
    DEFAULT_PAGE_SIZE,
    PageRequest,
    Position,
    clamp_page_size,
    cut,
    decode_token,
    encode_token,
)


def test_page_size_defaults_and_clamps():
    assert (clamp_page_size(0, 200), clamp_page_size(7, 200), clamp_page_size(10_000, 200)) == (
        DEFAULT_PAGE_SIZE,
        7,
        200,
    )
    assert PageRequest.parse(10_000, "", max_size=500) == PageRequest(500, None)


def test_page_tokens():
    token = encode_token(Position(1234, "art_1"))
    assert decode_token(token) == Position(1234, "art_1")
    assert PageRequest.parse(0, token, max_size=10).after == Position(1234, "art_1")
    for bad in ("garbage!", "bm90IGpzb24", encode_token(Position(1, "a b")), "W10", "WyJ4IiwgImEiXQ"):
        with pytest.raises(InvalidArgument, match="page_token"):
            decode_token(bad)


def test_cut_names_the_last_row_of_a_full_page():
    page = PageRequest(2)
    rows = [Position(3, "c"), Position(2, "b"), Position(1, "a")]
    kept, token = cut(rows, page, lambda row: row)
    assert kept == rows[:2] and decode_token(token) == Position(2, "b")
    assert cut(rows[:2], page, lambda row: row) == (rows[:2], "")
