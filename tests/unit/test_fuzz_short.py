"""The fuzz properties (tests/fuzz/properties.py), a few hundred inputs each: seconds in the
default run. ``-m fuzz`` runs them long (tests/fuzz/test_fuzz_long.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import properties as p

SHORT = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SHORT
@given(p.frame_texts())
def test_frames(text: str) -> None:
    p.frame_parsing(text)


@SHORT
@given(p.post_docs)
def test_posts(doc: Any) -> None:
    p.post_validation(doc)


@SHORT
@given(st.binary(max_size=300))
def test_bodies(raw: bytes) -> None:
    p.json_bodies(raw)


@SHORT
@given(p.token_texts())
def test_tokens(token: str) -> None:
    p.token_checks(token)


@SHORT
@given(p.config_texts())
def test_configs(text: str) -> None:
    p.config_loading(text)


@SHORT
@given(st.one_of(p.texts, st.from_regex(r"[a-z-]{1,10}:[0-9a-z]{1,4}:[0-9]{1,20}\n?")))
def test_cursors(text: str) -> None:
    p.cursor_parsing(text)


@SHORT
@given(st.one_of(p.texts, st.from_regex(r"https?://[\[\]a-z0-9.:]{0,20}(:[0-9]{0,6})?")))
def test_origins(origin: str) -> None:
    p.origin_checks(origin)


@SHORT
@given(p.frame_streams, st.lists(st.integers(0, 200_000), max_size=8))
def test_mask_scanner(frames: list[tuple[int, bool]], cuts: list[int]) -> None:
    p.mask_scanning(frames, cuts)
