"""Routing: Assigns each case to a grid or department and publishes work to per-department topics."""
