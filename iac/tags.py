"""Tags carried by every taggable resource, so cost reports and audits can slice by them.

The policy pack (iac/policy/policies.py) requires the same keys; a test keeps the two lists
equal.
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "chorus"

# Required on every taggable resource. "chorus-region" is the regions.yaml name ("us-east"),
# or "global" for the global plane's resources.
REQUIRED_TAGS: tuple[str, ...] = ("project", "stack", "chorus-region", "component",
                                  "managed-by", "owner")


@dataclass(frozen=True)
class Tags:
    """The tag values of one stack and region; ``of`` adds the component."""

    stack: str
    region: str
    owner: str

    def of(self, component: str, name: str | None = None) -> dict[str, str]:
        """Tags for a resource of ``component``; ``name`` sets the console's Name column."""
        tags = {
            "project": PROJECT,
            "stack": self.stack,
            "chorus-region": self.region,
            "component": component,
            "managed-by": "pulumi",
            "owner": self.owner,
        }
        if name is not None:
            tags["Name"] = name
        return tags
