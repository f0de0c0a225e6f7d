"""Scheduling settings for tests that are about something else than scheduling."""

from __future__ import annotations

import dataclasses

from qgjob.settings import Settings


def whole_keys(settings: Settings) -> Settings:
    """Settings under which a claim takes a key's jobs whole (up to 100), as the seed did:
    no cap on a lease's expected seconds and a floor above any key's (docs/scheduling.md)."""
    return dataclasses.replace(settings, max_batch_s=0.0, min_batch_s=1e9)
