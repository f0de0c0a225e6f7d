"""qgjob: a test orchestrator for AppWright mobile end-to-end tests.

This package holds the shared vocabulary (`qgjob.types`), the Python client of the REST API
(`qgjob.client`) and the Typer command-line interface (`qgjob.cli`).
"""

__version__ = "0.1.0"
