"""Notify: Tells departments, grid members, supervisors and citizens what happened."""
