"""Rate limits of the API (a sliding window counter: constant work per request): per token once it is known, per client address before (so that a
flood of bad tokens is cut short too). A refused request gets 429 with Retry-After.

Counts live in the storage named by API_RATE_LIMIT_STORAGE: "memory://" counts per process
(with several web workers each counts on its own), "redis://host:6379" counts across them."""
import math
import time

import limits
import limits.errors
from flask import Flask, current_app

from ..problems import problem


class RateLimits:
    def __init__(self, app: Flask):
        self.limit = limits.parse(app.config["API_RATE_LIMIT"])
        self.limiter = limits.strategies.SlidingWindowCounterRateLimiter(
            limits.storage.storage_from_string(app.config["API_RATE_LIMIT_STORAGE"]))

    def refusal(self, key: str):
        """None when the request may go on; else the 429 answer."""
        if self.limiter.hit(self.limit, key):
            return None
        reset = self.limiter.get_window_stats(self.limit, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        return problem(429, "Too many requests",
                       f"The limit is {self.limit}; try again in {wait} s.", headers={"Retry-After": str(wait)})


def init_app(app: Flask) -> None:
    try:
        app.extensions["api_rate_limits"] = RateLimits(app)
    except (ValueError, limits.errors.ConfigurationError) as error:
        raise ValueError(f"PROVIDER_ADMIN_API_RATE_LIMIT / _STORAGE: {error}") from None


def check(key: str):
    return current_app.extensions["api_rate_limits"].refusal(key)
