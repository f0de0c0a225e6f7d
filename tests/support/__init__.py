"""Test support: PostgreSQL for tests, servers on 127.0.0.1, subprocess helpers."""
