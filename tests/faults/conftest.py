"""The fault suite: real processes, killed or cut off on purpose.

Every fault test ends with `check_invariants` (tests/support/invariants.py) on top of its
own assertions, so each fault is also checked against the whole of DESIGN §3.
"""

from tests.support.crew import crew

__all__ = ["crew"]
