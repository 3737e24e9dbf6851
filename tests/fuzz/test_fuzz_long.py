"""The fuzz properties (tests/fuzz/properties.py), long. Runs only with ``-m fuzz``.

Each property gets ``CHORUS_FUZZ_EXAMPLES`` generated inputs (default 2,000) and, around
each of them, ``CHORUS_FUZZ_MUTANTS`` random mutants (default 80): about 1.1 million inputs
in all. The count of each is printed at the end of the run."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import properties as p

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(7200)]

EXAMPLES = int(os.environ.get("CHORUS_FUZZ_EXAMPLES", "2000"))
MUTANTS = int(os.environ.get("CHORUS_FUZZ_MUTANTS", "80"))
LONG = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
seeds = st.integers(0, 2**32)


@LONG
@given(p.frame_texts(), seeds)
def test_frames(text: str, seed: int) -> None:
    p.frame_parsing(text)
    for mutant in p.mutants(text, seed, MUTANTS):
        p.frame_parsing(mutant)


@LONG
@given(p.post_docs, seeds)
def test_posts(doc: Any, seed: int) -> None:
    p.post_validation(doc)
    text = json.dumps(doc, ensure_ascii=False)
    for mutant in p.mutants(text, seed, MUTANTS):
        p.post_bodies(mutant)


@LONG
@given(st.binary(max_size=2000), seeds)
def test_bodies(raw: bytes, seed: int) -> None:
    p.json_bodies(raw)
    rng = random.Random(seed)
    for _ in range(MUTANTS):
        cut = rng.randint(0, len(raw))
        p.json_bodies(raw[:cut] + rng.randbytes(rng.randint(0, 8)) + raw[cut + 1:])


@LONG
@given(p.token_texts(), seeds)
def test_tokens(token: str, seed: int) -> None:
    p.token_checks(token)
    for mutant in p.mutants(token, seed, MUTANTS):
        p.token_checks(mutant)


@LONG
@given(p.config_texts(), seeds)
def test_configs(text: str, seed: int) -> None:
    p.config_loading(text)
    for mutant in p.mutants(text, seed, 5):   # a YAML load is slow: fewer mutants
        p.config_loading(mutant)


@LONG
@given(st.one_of(p.texts, st.from_regex(r"[a-z-]{1,10}:[0-9a-z]{1,4}:[0-9]{1,20}\n?")), seeds)
def test_cursors(text: str, seed: int) -> None:
    p.cursor_parsing(text)
    for mutant in p.mutants(text, seed, MUTANTS):
        p.cursor_parsing(mutant)


@LONG
@given(st.one_of(p.texts, st.from_regex(r"https?://[\[\]a-z0-9.:]{0,20}(:[0-9]{0,6})?")), seeds)
def test_origins(origin: str, seed: int) -> None:
    p.origin_checks(origin)
    for mutant in p.mutants(origin, seed, MUTANTS):
        p.origin_checks(mutant)


@LONG
@given(p.frame_streams, seeds)
def test_mask_scanner(frames: list[tuple[int, bool]], seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(MUTANTS):
        p.mask_scanning(frames, [rng.randint(0, 200_000) for _ in range(rng.randint(0, 8))])
