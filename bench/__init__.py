"""Benchmarks: scripts that print numbers (with the machine's core count), never assertions."""
