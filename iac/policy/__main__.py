"""The policy pack: ``pulumi preview --policy-pack iac/policy`` (docs/operations.md).

Constructing `PolicyPack` starts the analyzer's server and blocks, so it happens only here;
the policies themselves live in policies.py and are tested there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="chorus-aws", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
