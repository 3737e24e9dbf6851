"""The API fuzzed from docs/openapi.yaml on a real gateway, long: ``CHORUS_FUZZ_REQUESTS``
generated requests (default 20,000). Runs only with ``-m fuzz``."""

from __future__ import annotations

import os

import pytest

from chorus.cluster.local import LocalCluster
from region.auth import issue_token
from tests.fuzz.api import fuzz_api

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(7200)]


def test_the_api_answers_generated_requests_as_documented(cluster: LocalCluster) -> None:
    auth = cluster.config.auth
    tokens = [issue_token(auth, f"fuzz-{i}", roles=roles)
              for i, roles in enumerate([("viewer",), ("moderator",), ("host", "verified")])]
    examples = int(os.environ.get("CHORUS_FUZZ_REQUESTS", "20000"))
    statuses = fuzz_api(cluster.config.regions[0].gateway_urls[0], tokens, examples)
    print("statuses:", dict(sorted(statuses.items())))
    assert 500 not in statuses
