"""Sla: Sets deadlines on the Chinese working calendar, warns and escalates."""
