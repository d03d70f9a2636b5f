"""Gridline's shared runtime: the one place for settings, Kafka, outbox, consumer loop, telemetry and logs.

Every service imports from here; nothing infrastructural is copied between services.
"""
