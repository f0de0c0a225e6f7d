"""Security tests: isolation, secrets, limits on input and on failed authentication."""

from tests.support.crew import crew

__all__ = ["crew"]
