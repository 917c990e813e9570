"""The project's one door to the Hub: the client, its transfer protocol, and what its failures mean.

**Protocol.** huggingface_hub 2.4 uploads through Xet whenever ``hf_xet`` is installed
(it is a dependency of huggingface_hub) and ``HF_HUB_DISABLE_XET`` is unset
(``huggingface_hub/_commit_api.py``, ``_upload_files``: ``if is_xet_available(): ...``).
A publish here always uploads with **classic LFS** instead (:func:`classic_lfs`), because:

- the Hub accepts classic LFS uploads into Xet-backed repos and migrates them to Xet
  itself (https://huggingface.co/docs/hub/xet/legacy-git-lfs, "Backward Compatibility
  with LFS"), so nothing is lost on the Hub's side;
- it is the protocol the tests run end to end: no Xet CAS server runs offline, so the
  Xet path would ship untested, and what a user runs must be what is tested;
- a publish already sends only the files whose SHA-256 changed; Xet's chunk-level
  deduplication would also save the unchanged parts of a *changed* large file (a
  Parquet shard, an HDF5 shard), which classic LFS sends whole. That is the cost.

``is_xet_available()`` reads ``huggingface_hub.constants.HF_HUB_DISABLE_XET`` at each
call, so setting it for the duration of a publish chooses LFS whatever the
environment says. Downloads (``load_dataset``, the Space) are not affected.

**Failures.** :func:`classify` turns whatever the client raised (an ``HfHubHTTPError``,
an ``httpx2`` transport error, the ``RuntimeError`` huggingface_hub wraps LFS upload
failures in, the ``ValueError`` its README validation raises, a ``JSONDecodeError`` on
an HTML error page) into a :class:`HubFailure`: its kind, HTTP status, the Hub's own
error messages on one line, and the wait the Hub asked for (``Retry-After`` or the
``RateLimit`` header).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from huggingface_hub import HfApi

Kind = Literal["transient", "conflict", "credentials", "refused"]
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CONFLICT_STATUS = frozenset({409, 412})
CREDENTIALS_STATUS = frozenset({401, 403})


def client() -> tuple[HfApi, str | None]:
    """An ``HfApi`` for ``HF_ENDPOINT`` (or the Hub) with the user's token, and the token."""
    from huggingface_hub import HfApi, get_token

    token = get_token()
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or None), token


@contextlib.contextmanager
def classic_lfs() -> Iterator[None]:
    """Upload with classic LFS inside this block, whatever ``HF_HUB_DISABLE_XET`` says (see above)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = before


def redact(text: str, token: str | None) -> str:
    """``text`` with the token, and anything shaped like a Hub token, replaced."""
    text = re.sub(r"hf_[A-Za-z0-9]{6,}", "hf_***", text)
    return text.replace(token, "***") if token else text


@dataclass(frozen=True)
class HubFailure:
    """What a failed Hub call means for the user."""

    kind: Kind
    status: int | None  # HTTP status; None for a connection that failed
    message: str  # one line: the Hub's own messages where it gave any
    retry_after: float | None = None  # seconds the Hub asked to wait


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def retry_after(headers: Any) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date) or the ``RateLimit`` header's ``t=``."""
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        with contextlib.suppress(TypeError, ValueError, IndexError):
            from datetime import UTC, datetime

            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    limit = headers.get("RateLimit")
    if limit and (match := re.search(r"\bt\s*=\s*(\d+)", limit)) and re.search(r"\br\s*=\s*0\b", limit):
        return float(match.group(1))
    return None


def _first(text: str) -> str:
    text = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text[:300] + ("..." if len(text) > 300 else "")


def server_says(response: Any) -> str:
    """The Hub's error messages in a response, on one line; or what kind of body it was."""
    messages: list[str] = []
    header = response.headers.get("X-Error-Message")
    if header:
        messages.append(header)
    content_type = response.headers.get("Content-Type", "")
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError, RuntimeError):
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            messages += [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
        error = body.get("error")
        if isinstance(error, list):
            messages += [str(e) for e in error]
        elif error:
            messages.append(str(error))
    elif "html" in content_type or re.match(r"\s*<(!doctype|html)", response.text or "", re.I):
        title = re.search(r"<title>(.*?)</title>", response.text or "", re.S | re.I)
        messages.append(f"an HTML error page ({_first(title.group(1)) if title else 'no title'})")
    elif response.text:
        messages.append(_first(response.text))
    unique = list(dict.fromkeys(_first(m) for m in messages if m))
    return "; ".join(unique) or getattr(response, "reason_phrase", "") or "no message"


def classify(exc: BaseException) -> HubFailure | None:
    """What a failure raised by huggingface_hub means; None when it is not a Hub failure."""
    import httpx2

    where = ""
    for current in _chain(exc):
        text = str(current).strip().splitlines()[0] if str(current).strip() else ""
        if isinstance(current, RuntimeError) and text.startswith("Error while uploading"):
            where = text.rstrip(".") + ": "  # huggingface_hub names the file it was uploading
        response: Any = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if response is not None and isinstance(status, int) and status >= 400:
            message = f"HTTP {status}: {server_says(response)}"
            wait = retry_after(response.headers)
            if status in TRANSIENT_STATUS:
                return HubFailure("transient", status, where + message, wait)
            if status in CONFLICT_STATUS:
                return HubFailure("conflict", status, where + message)
            if status in CREDENTIALS_STATUS:
                return HubFailure("credentials", status, where + message)
            return HubFailure("refused", status, where + message)
        if isinstance(current, (httpx2.TransportError, ConnectionError, TimeoutError)):
            return HubFailure("transient", None, f"{where}{type(current).__name__}: {_first(str(current))}")
        if isinstance(current, json.JSONDecodeError):
            # huggingface_hub reads some replies as JSON before checking their status
            # (validate-yaml): a proxy's HTML error page ends here.
            return HubFailure("transient", None, f"{where}the Hub answered with a page that is not JSON")
    return None


def validate_readme(api: HfApi, source: Path | bytes, repo_type: str) -> None:
    """Ask the Hub whether it accepts a README's metadata, before anything is uploaded.

    The same request ``create_commit`` makes later (``POST /api/validate-yaml``), but its
    status is checked before its body is read, so an HTML error page is a transient
    failure and a refusal carries the Hub's error list (:func:`classify`).
    """
    from huggingface_hub import get_session, hf_raise_for_status

    # Public as huggingface_hub.utils.build_hf_headers (not re-exported for type checkers).
    from huggingface_hub.utils._headers import build_hf_headers

    content = source if isinstance(source, bytes) else source.read_bytes()
    response = get_session().post(
        f"{api.endpoint}/api/validate-yaml",
        json={"content": content.decode("utf-8"), "repoType": repo_type},
        headers=build_hf_headers(token=api.token),
    )
    hf_raise_for_status(response)
