"""Problems of a declarative file, each naming where in the file it is and which entity it concerns."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigIssue
from .entities import Location, display_location


@dataclass(frozen=True)
class ScopedIssue(ConfigIssue):
    """A ConfigIssue inside one entity of a declarative file.

    `services.1.routes.2.plugins.1 (datakit plugin on route "orders"): node #3 (FILTER), field 'jq': ...`
    """

    location: Location = ()
    entity: str = ""  # `route "orders"`, `datakit plugin on service "billing"`

    def __str__(self) -> str:
        where = display_location(self.location)
        if self.entity:
            where = f"{where} ({self.entity})" if where else self.entity
        inner = super().__str__()
        return f"{where}: {inner}" if where else inner


def scoped(issue: ConfigIssue, location: Location, entity: str) -> ScopedIssue:
    """Put a plugin config's issue in the context of the plugin that holds the config."""
    return ScopedIssue(issue.message, issue.node_index, issue.node_name, issue.field, location, entity)
