"""Intake: the one door for new appeals (12345 hotline, grid reports, Open311)."""
