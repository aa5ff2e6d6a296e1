"""When a run that failed for a passing reason is tried again: exponential backoff with jitter.

The n-th retry waits ``base * 2**(n-1)`` seconds, capped at ``max_seconds``, times a random
factor in [0.5, 1): "equal jitter", so runs that failed together (S3 throttled them all) spread
out, and no wait is shorter than half its step.
"""

from __future__ import annotations

import random
from collections.abc import Callable

JITTER_FLOOR = 0.5


def retry_delay(
    failed_attempts: int,
    *,
    base_seconds: float,
    max_seconds: float,
    random_fraction: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the attempt after ``failed_attempts`` (>= 1) failed ones."""
    step = min(max_seconds, base_seconds * 2.0 ** min(max(0, failed_attempts - 1), 60))
    return step * (JITTER_FLOOR + (1.0 - JITTER_FLOOR) * random_fraction())
