"""Notify's pure domain: who is told what and when, how messages look, and delivery policy.

Nothing here imports infrastructure; every function takes its inputs (including "now") explicitly.
"""
