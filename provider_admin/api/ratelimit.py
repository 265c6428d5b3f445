"""Rate limits of the API (a sliding window counter: constant work per request): per token once it is known, per client address before (so that a
flood of bad tokens is cut short too). A refused request gets 429 with Retry-After.

Counts live in the storage named by API_RATE_LIMIT_STORAGE: "memory://" counts per process
(with several web workers each counts on its own), "redis://host:6379" counts across them.
In memory the counter is the small one below: the `limits` package's memory storage starts a
thread every 10 ms to expire its keys, which cost a busy worker more than the count itself."""
import math
import time
from threading import Lock

import limits
import limits.errors
from flask import Flask, current_app

from ..problems import problem

LOCAL = "memory://"


class LocalWindows:
    """The sliding window counter of `limits` (this window's count, plus the previous window's
    weighted by how much of it the sliding window still covers), for one process."""

    def __init__(self, limit: limits.RateLimitItem):
        self.amount, self.seconds = limit.amount, limit.get_expiry()
        self._counts: dict[str, tuple[int, int, int]] = {}  # key: window number, its count, the previous one's
        self._lock = Lock()
        self._hits = 0

    def hit(self, key: str, now: float | None = None) -> float | None:
        """None when the hit is counted; else the seconds until one would be."""
        now = time.time() if now is None else now
        window, elapsed = divmod(now, self.seconds)
        window = int(window)
        with self._lock:
            number, count, previous = self._counts.get(key, (window, 0, 0))
            if number != window:
                number, count, previous = window, 0, count if number == window - 1 else 0
            weight = 1 - elapsed / self.seconds
            if math.floor(previous * weight + count) + 1 > self.amount:
                return self._wait(count, previous, elapsed)
            self._hits += 1
            if self._hits % 4096 == 0:  # keys idle for a whole window count nothing any more
                self._forget_before(window - 1)
            self._counts[key] = (number, count + 1, previous)
            return None

    def _wait(self, count: int, previous: int, elapsed: float) -> float:
        if count >= self.amount or previous == 0:  # only the next window frees a place
            return self.seconds - elapsed
        # the previous window's share falls below what is left of the limit
        return max(0.0, self.seconds * (1 - (self.amount - count) / previous) - elapsed + 1e-6)

    def _forget_before(self, window: int) -> None:
        for key in [k for k, (number, _, _) in self._counts.items() if number < window]:
            del self._counts[key]


class RateLimits:
    def __init__(self, app: Flask):
        self.limit = limits.parse(app.config["API_RATE_LIMIT"])
        storage = app.config["API_RATE_LIMIT_STORAGE"]
        self.local = LocalWindows(self.limit) if storage == LOCAL else None
        self.limiter = None if self.local else limits.strategies.SlidingWindowCounterRateLimiter(
            limits.storage.storage_from_string(storage))

    def refusal(self, key: str):
        """None when the request may go on; else the 429 answer."""
        if self.local is not None:
            wait = self.local.hit(key)
            if wait is None:
                return None
        elif self.limiter.hit(self.limit, key):
            return None
        else:
            wait = self.limiter.get_window_stats(self.limit, key).reset_time - time.time()
        wait = max(1, math.ceil(wait))
        return problem(429, "Too many requests",
                       f"The limit is {self.limit}; try again in {wait} s.", headers={"Retry-After": str(wait)})


def init_app(app: Flask) -> None:
    try:
        app.extensions["api_rate_limits"] = RateLimits(app)
    except (ValueError, limits.errors.ConfigurationError) as error:
        raise ValueError(f"PROVIDER_ADMIN_API_RATE_LIMIT / _STORAGE: {error}") from None


def check(key: str):
    return current_app.extensions["api_rate_limits"].refusal(key)
