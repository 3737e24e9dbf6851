"""Fixtures of the iac/ tests: the repository's deployment, run once under Pulumi mocks.

pulumi_aws warns (DeprecationWarning) when some of its modules are imported, about resources
Chorus does not use; the test settings turn warnings into errors. Those warnings, and only
those, are ignored: at import here (collection) and in every iac test (a filterwarnings mark).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PULUMI_AWS_DEPRECATIONS = (
    r"ignore:.* has been deprecated in favor of .*:DeprecationWarning:pulumi_aws\."
)
# Every pulumi_aws module the program uses; imported once here, under the filter.
PULUMI_AWS_MODULES = ("appautoscaling", "cloudfront", "cloudwatch", "ebs", "ec2", "ecs",
                      "elasticache", "iam", "lb", "route53", "s3", "secretsmanager", "ssm",
                      "vpc")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".* has been deprecated in favor of .*",
                            category=DeprecationWarning, module=r"pulumi_aws\.")
    for _module in PULUMI_AWS_MODULES:
        importlib.import_module(f"pulumi_aws.{_module}")

from chorus.config import Config, load_config  # noqa: E402
from tests.iac.helpers import make_deployment, run_deployment  # noqa: E402
from tests.iac.mockrun import Run  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.filterwarnings(PULUMI_AWS_DEPRECATIONS))


@pytest.fixture(scope="session")
def repo_regions() -> Config:
    return load_config(ROOT / "regions.yaml")


@pytest.fixture(scope="session")
def deployed(repo_regions: Config) -> Run:
    """The repository's regions.yaml deployed once for the whole session."""
    return run_deployment(make_deployment(repo_regions))


@pytest.fixture(scope="session")
def regions_text() -> str:
    return (ROOT / "regions.yaml").read_text(encoding="utf-8")
