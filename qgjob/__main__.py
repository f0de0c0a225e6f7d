"""`python -m qgjob` runs the CLI."""

from qgjob.cli.main import run

run()
