"""The `qgjob` command-line interface: Typer commands over `qgjob.client.QgjobClient`.

`qgjob.cli.main` builds the app and holds the `run()` entry point; each other module is one
area (jobs, tokens, server) and `output` holds the formatting they share.
"""
