"""Sla's pure domain: the working calendar, the policy table and deadline arithmetic (no I/O)."""
