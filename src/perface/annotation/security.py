"""Request checks of the web app: token format, CSRF tokens and per-token rate limits.

Tokens travel in the URL path (invite links), so a browser never sends them on its own to another
site's request; state changes are still POSTs that must carry a CSRF token derived (HMAC) from the
project's secret and the caller's token, and whose ``Origin``, when sent, must be this server.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from dataclasses import dataclass, field

__all__ = ["RateLimiter", "csrf_token", "token_ok"]

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def token_ok(token: str) -> bool:
    """Whether `token` has the shape of one of our tokens (checked before any lookup)."""
    return bool(TOKEN_RE.fullmatch(token or ""))


def csrf_token(secret: str, token: str) -> str:
    """The CSRF token for pages served to the holder of `token` (stable across restarts)."""
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), "sha256").hexdigest()[:40]


def csrf_ok(secret: str, token: str, sent: str | None) -> bool:
    """Constant-time check of a CSRF token sent with a POST."""
    return bool(sent) and hmac.compare_digest(csrf_token(secret, token), sent or "")


@dataclass
class RateLimiter:
    """Token bucket per caller: ``rate`` requests per second on average, bursts up to ``burst``."""

    rate: float = 10.0
    burst: float = 40.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one request from `key`'s bucket; False when it is empty (answer 429)."""
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            level, last = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level < 1:
                self._buckets[key] = (level, now)
                return False
            self._buckets[key] = (level - 1, now)
            if len(self._buckets) > 100_000:  # bound memory: forget the idle
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return True
