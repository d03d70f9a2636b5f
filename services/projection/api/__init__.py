"""Projection's HTTP surface: case queries, statistics, worklists, read-your-writes checks."""

from services.projection.api import cases, consistency, stats, worklists

ROUTERS = (cases.router, stats.router, worklists.router, consistency.router)
