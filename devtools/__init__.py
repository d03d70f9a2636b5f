"""Developer tooling: local infrastructure, running the whole system, seeding."""
