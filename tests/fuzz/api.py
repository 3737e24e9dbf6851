"""The gateway's HTTP API fuzzed from its description, docs/openapi.yaml (schemathesis), on a
real gateway: generated requests, valid by the description (positive) and not (negative),
each answered without a server error, in the documented form.

Skipped: the SSE stream (an endless response) and blocking terms in every stream (it would
refuse other tests' posts); long-polls are sent with ``timeout=0``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.properties import TALLY

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SKIPPED = {"/v1/streams/{stream}/events"}
# Decisions that would change what every other test on the same cluster meets: a term blocked
# in every stream refuses their posts (a generated "a" blocks every comment with the word a).
SKIPPED_OPERATIONS = {("POST", "/v1/moderation/terms")}
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance]
NEGATIVE_CHECKS = [not_a_server_error, content_type_conformance]


def strategy() -> st.SearchStrategy[tuple[GenerationMode, Any]]:
    schema = schemathesis.openapi.from_path(OPENAPI)
    choices = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED or (
                operation.method.upper(), operation.path) in SKIPPED_OPERATIONS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            choices.append(st.tuples(st.just(mode), operation.as_strategy(generation_mode=mode)))
    return st.one_of(choices)


def fuzz_api(base_url: str, tokens: list[str], examples: int) -> Counter[int]:
    """Sends ``examples`` generated requests; returns the count of each status. Fails (with a
    minimal failing request) on a server error or an undocumented answer."""
    statuses: Counter[int] = Counter()
    token_cycle = itertools.cycle(tokens)
    session = requests.Session()

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def one(generated: tuple[GenerationMode, Any]) -> None:
        mode, case = generated
        if case.path.endswith("/poll"):
            case.query = {**(case.query or {}), "timeout": "0"}
        headers = {"Authorization": f"Bearer {next(token_cycle)}"}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
        TALLY["api requests"] += 1
        statuses[response.status_code] += 1
        checks = POSITIVE_CHECKS if mode is GenerationMode.POSITIVE else NEGATIVE_CHECKS
        case.validate_response(response, checks=checks, headers=headers)

    one()
    return statuses
