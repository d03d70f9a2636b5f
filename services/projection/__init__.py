"""Projection: read models built from the case event log, and the operators' query API."""
