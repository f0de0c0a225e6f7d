"""How long to wait before trying the service again: exponential, capped, with jitter.

Jitter keeps a fleet of workers that lost the service at the same moment from coming back
at the same moment. The random source is injectable so that tests can pin the delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of `base_s`·2ⁿ capped at `cap_s`, each drawn from its upper half ("equal
    jitter"), so a delay never collapses to zero. `reset()` after a success."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures, 32))
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
