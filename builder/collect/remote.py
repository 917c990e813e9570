"""Remote calls of a collection: retries with backoff, a rate limit, and one reading of failures.

Every call to the STAC API, to a cloud-optimised GeoTIFF or to a context provider goes
through :meth:`Remote.call`. A failure is *transient* (a dropped or refused connection, a
timeout, HTTP 408, 429, 500, 502, 503, 504 or a CDN's 520-524) and retried, waiting
``backoff_s`` doubled each time and never more than ``max_wait_s``; or *permanent* (HTTP 401,
403, 404, a reply that is not what was asked) and reported at once. What is left after the
last try is a :class:`RemoteError` with one line that says what failed and why; the
collector counts it as the site's skip reason. The rate limit spaces the starts of calls by
at least ``1 / rate`` seconds (``rate`` 0: no limit). Access tokens never appear in a
message (:func:`redact`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from builder.errors import CropmarkError

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
# GDAL's curl reader says "HTTP response code: 503"; requests and urllib name the status too.
_STATUS = re.compile(r"(?:HTTP response code:|status code|HTTP Error|HTTP status)\s*:?\s*(\d{3})", re.I)
_TRANSIENT_TEXT = re.compile(
    r"connection (?:refused|reset|aborted)|couldn't connect|could not connect|timed out|timeout|"
    r"remote end closed|temporarily unavailable|broken pipe|empty reply|recv failure|"
    r"failed to connect|name or service not known",
    re.I,
)
_TOKEN = re.compile(r"(access_token|token|key|sig|signature)=[^&\s'\"]+", re.I)
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"]+@")  # http://user:password@host


class RemoteError(CropmarkError, OSError):
    """A remote call that failed for good (after its retries, or at once when permanent)."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def redact(text: str) -> str:
    """``text`` with the values of token-like URL parameters and URLs' user:password replaced by ``***``."""
    return _USERINFO.sub("***@", _TOKEN.sub(lambda m: f"{m.group(1)}=***", text))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status a failure carries (an attribute, or the number in its message)."""
    for attribute in ("status_code", "code", "status"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int):
        return value
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may help: a transient status, or a connection that failed."""
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return bool(_TRANSIENT_TEXT.search(str(exc)))


def describe(exc: BaseException) -> str:
    """One line for a failure: its type, its HTTP status if any, its first line, redacted."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    status = status_of(exc)
    said = f"HTTP {status}: " if status is not None and str(status) not in first else ""
    return redact(f"{type(exc).__name__}: {said}{first}".rstrip(": "))


@dataclass
class Remote:
    """Retries and a rate limit shared by every remote call of one collection.

    Attributes:
        attempts: tries in all for a transient failure (1: no retry).
        backoff_s: wait before the second try; doubled for each further try.
        max_wait_s: the longest wait between two tries.
        rate: calls started per second at most (0: no limit).
        calls: calls started; retries: tries after a transient failure (both counted here).
    """

    attempts: int = 4
    backoff_s: float = 1.0
    max_wait_s: float = 30.0
    rate: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    calls: int = 0
    retries: int = 0
    _next_start: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts {self.attempts}: at least 1")
        if not 0 <= self.backoff_s <= self.max_wait_s:
            raise ValueError(f"backoff {self.backoff_s} s: from 0 to the longest wait {self.max_wait_s} s")
        if self.rate < 0:
            raise ValueError(f"rate {self.rate}: 0 (no limit) or more calls per second")

    def _pace(self) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.rate
        if start > now:
            self.sleep(start - now)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, tried again on transient failures; :class:`RemoteError` when it gives up.

        Args:
            what: names the call in the error ("search", "B04 of S2B_...").
            fn: the call; any exception it raises is read by :func:`is_transient`.
        """
        for attempt in range(1, self.attempts + 1):
            self._pace()
            self.calls += 1
            try:
                return fn()
            except RemoteError:
                raise
            except Exception as exc:
                transient = is_transient(exc)
                if not transient or attempt == self.attempts:
                    tries = f" after {attempt} tries" if attempt > 1 else ""
                    raise RemoteError(f"{what}: {describe(exc)}{tries}", transient) from None
                self.retries += 1
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s))
        raise AssertionError("unreachable")  # pragma: no cover
