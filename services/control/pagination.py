"""Pages of a listing, newest first: the page-size rule, the page token and
the keyset query, written once for every listing of control (executions,
artifacts, runs).

Page size: 0 asks for DEFAULT_PAGE_SIZE; a size over the listing's maximum
is clamped to that maximum, never refused.

Keyset pagination: rows are ordered by (created_at_ms, id) descending, where
`id` is the row's unique string key; a page token names the last row of the
previous page, and the next page holds the rows strictly after it in that
order. Unlike an offset, a row inserted meanwhile neither shifts the pages
nor repeats a row. The token is opaque to callers: url-safe base64 (no
padding) of the JSON array [created_at_ms, id].
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from services.common.contract.ids import ID_RE
from services.control.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50

Row = TypeVar("Row")


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's creation time and id."""

    created_at_ms: int
    id: str


@dataclasses.dataclass(frozen=True)
class PageRequest:
    size: int = DEFAULT_PAGE_SIZE
    after: Position | None = None

    @classmethod
    def parse(cls, page_size: int, page_token: str, *, max_size: int) -> PageRequest:
        """The page a request asks for (raises InvalidArgument for a bad token)."""
        return cls(clamp_page_size(page_size, max_size), decode_token(page_token) if page_token else None)


FIRST_PAGE = PageRequest()


def clamp_page_size(requested: int, max_size: int) -> int:
    return min(requested or DEFAULT_PAGE_SIZE, max_size)


def encode_token(position: Position) -> str:
    raw = json.dumps([position.created_at_ms, position.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at_ms, row_id = json.loads(raw)
        if isinstance(created_at_ms, int) and isinstance(row_id, str) and ID_RE.match(row_id):
            return Position(created_at_ms, row_id)
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidArgument("page_token", "not a token from a previous response")


def newest_first(query: Any, created_at_ms: Any, row_id: Any, page: PageRequest) -> Any:
    """`query` restricted to the requested page: the rows after the page's
    position, newest first, one more than the page holds (so `cut` knows
    whether another page follows)."""
    if page.after is not None:
        query = query.where(
            sa.or_(
                created_at_ms < page.after.created_at_ms,
                sa.and_(created_at_ms == page.after.created_at_ms, row_id < page.after.id),
            )
        )
    return query.order_by(created_at_ms.desc(), row_id.desc()).limit(page.size + 1)


def cut(rows: Sequence[Row], page: PageRequest, position_of: Callable[[Row], Position]) -> tuple[list[Row], str]:
    """The page's rows and the token of the next page ("" on the last one)."""
    if len(rows) > page.size:
        kept = list(rows[: page.size])
        return kept, encode_token(position_of(kept[-1]))
    return list(rows), ""
