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

**One retry loop.** huggingface_hub retries most requests itself
(``huggingface_hub/utils/_http.py``, ``_http_backoff_base``: up to 5 retries of 408,
429 and 5xx replies and dropped connections, sleeping ``Retry-After`` + 1 s uncapped,
or 1, 2, 4, 8 s; ``file_download.http_get``: 5 resumes of a dropped download, 1 s
apart). Inside :func:`single_tries` every request is tried once (``hf_hub_download``
still asks again at once, once, when the HEAD of a file it has not cached fails: no
wait), so each failure comes back to the caller's own loop (``builder.hub.publish``),
which alone decides how often to try (``--attempts``) and how long to wait
(``--backoff``, ``Retry-After`` up to ``--max-wait``).

**Endpoint and token.** :func:`endpoint` is the one reader of ``HF_ENDPOINT`` in the
project: huggingface_hub reads it once, at import (``constants.ENDPOINT``), and every call
here passes it again, read at the call, so that a process pointed at another Hub after
import (a test's local server) talks to that Hub. Uploads and checks before a publish send
the user's token (:func:`client`); downloads (a release, an adapter, the Space's example
tiles) send the token huggingface_hub finds itself (``HF_TOKEN`` or ``hf auth login``), and
keep huggingface_hub's own retries: a download is not a commit. Raw requests (README
validation, the streamed commit of ``builder.hub.commit``) go through :func:`post`, with
the endpoint and token of an ``HfApi`` made here. One Hub access is not the client's: a
base model named by Hub id is loaded by transformers' ``from_pretrained``, which asks
huggingface_hub with its import-time endpoint.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from builder.errors import CropmarkError, PublishError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

Kind = Literal["transient", "conflict", "credentials", "refused", "offline"]
# Retried: a request timeout, a rate limit, and the server errors a retry can cure:
# 500/502/503/504 (RFC 9110 section 15.6; the codes huggingface_hub itself retries,
# ``_DEFAULT_RETRY_ON_STATUS_CODES``) and a CDN's 520-524 (origin unreachable or timed
# out: https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/).
# Not retried: 501 (not implemented), 505-511 (a retry gets the same answer).
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
CONFLICT_STATUS = frozenset({409, 412})
CREDENTIALS_STATUS = frozenset({401, 403})
# A Hub access token: "hf_" (or "api_org_") and 34 letters or digits, the rule secret
# scanners use (gitleaks, cmd/generate/config/rules/huggingface.go: hf_(?i:[a-z]{34});
# trufflehog allows digits too). Anything shorter, such as a repo named hf_cropmarks,
# is not a token.
TOKEN_SHAPED = re.compile(r"(?<![A-Za-z0-9_])(hf_|api_org_)[A-Za-z0-9]{34}(?![A-Za-z0-9])")


class SourceChangedError(PublishError):
    """A file changed on disk after the gate hashed it; nothing of it was committed."""


def check_token(token: str | None) -> None:
    """Refuse a token that cannot travel in an HTTP header (a pasted accent, a smart quote)."""
    if not token:
        return
    bad = next((i for i, c in enumerate(token) if not (c.isascii() and c.isprintable()) or c.isspace()), None)
    if bad is not None:
        raise PublishError(
            f"the Hub token (HF_TOKEN or `hf auth login`) holds a character that is not printable ASCII "
            f"at position {bad + 1} of {len(token)}: Hub tokens are 'hf_' and letters and digits; "
            "copy it again from https://huggingface.co/settings/tokens"
        )


def token() -> str | None:
    """The user's token (``HF_TOKEN`` or ``hf auth login``), checked by :func:`check_token`."""
    from huggingface_hub import get_token

    found = get_token() or None
    check_token(found)
    return found


def endpoint() -> str | None:
    """The Hub to talk to: ``HF_ENDPOINT`` as set now, or None for huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or None


def client() -> tuple[HfApi, str | None]:
    """An ``HfApi`` for ``HF_ENDPOINT`` (or the Hub) with the user's token, and the token."""
    from huggingface_hub import HfApi

    found = token()
    return HfApi(endpoint=endpoint(), token=found), found


def anonymous() -> HfApi:
    """An ``HfApi`` that sends no token: what a reader without an account (a Space) sees."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=False)


class DownloadError(CropmarkError):
    """A download the Hub did not serve (no such repo or file, no network, no access).

    The message is the first line of what huggingface_hub raised (its type when it said nothing).
    """


def _downloaded(fetch: Callable[[], str]) -> str:
    """What ``fetch`` returned; a :class:`DownloadError` for a failure of the Hub or the network."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return fetch()
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        text = str(exc).strip()
        raise DownloadError(text.splitlines()[0] if text else type(exc).__name__) from exc


def download_repo(repo_id: str, *, repo_type: str | None = None, revision: str | None = None) -> Path:
    """The local folder of a whole repo at ``revision`` (huggingface_hub's cache).

    Raises:
        DownloadError: the Hub did not serve it.
    """
    from huggingface_hub import snapshot_download

    return Path(
        _downloaded(
            lambda: snapshot_download(repo_id, repo_type=repo_type, revision=revision, endpoint=endpoint())
        )
    )


def download_file(
    repo_id: str, filename: str, *, repo_type: str | None = None, revision: str | None = None
) -> str:
    """The local path of one file of a repo at ``revision`` (huggingface_hub's cache).

    Raises:
        DownloadError: the Hub did not serve it.
    """
    from huggingface_hub import hf_hub_download

    return _downloaded(
        lambda: hf_hub_download(
            repo_id, filename, repo_type=repo_type, revision=revision, endpoint=endpoint()
        )
    )


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is on (huggingface_hub then sends no request at all)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


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


@contextlib.contextmanager
def single_tries() -> Iterator[None]:
    """Inside this block huggingface_hub tries each request once (see "One retry loop" above)."""
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    backoff, http_get = _http._http_backoff_base, file_download.http_get

    def once(*args: Any, **kwargs: Any) -> Any:
        return backoff(*args, **{**kwargs, "max_retries": 0})

    def get_once(*args: Any, **kwargs: Any) -> Any:
        return http_get(*args, **{"_nb_retries": 0, **kwargs})

    _http._http_backoff_base, file_download.http_get = once, get_once
    try:
        yield
    finally:
        _http._http_backoff_base, file_download.http_get = backoff, http_get


def redact(text: str, token: str | None) -> str:
    """``text`` with the token itself, and anything shaped like a Hub token, replaced."""
    if token:
        text = text.replace(token, "***")
    return TOKEN_SHAPED.sub(lambda m: m.group(1) + "***", text)


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


def changed_source(exc: BaseException) -> SourceChangedError | None:
    """The :class:`SourceChangedError` behind ``exc`` (huggingface_hub wraps upload errors), if any."""
    return next((e for e in _chain(exc) if isinstance(e, SourceChangedError)), None)


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
    from huggingface_hub.errors import OfflineModeIsEnabled

    where = ""
    for current in _chain(exc):
        if isinstance(current, OfflineModeIsEnabled):
            return HubFailure(
                "offline", None, "HF_HUB_OFFLINE is set: huggingface_hub sends no request in offline mode"
            )
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


def post(
    api: HfApi,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    endpoint_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """POST ``path`` to ``api``'s Hub with its token's headers; the response, its status checked.

    ``endpoint_name`` names the request in huggingface_hub's errors (``hf_raise_for_status``);
    the other keywords (``json``, ``content``) go to the session's ``post``.
    """
    from huggingface_hub import get_session, hf_raise_for_status

    # Public as huggingface_hub.utils.build_hf_headers (not re-exported for type checkers).
    from huggingface_hub.utils._headers import build_hf_headers

    response = get_session().post(
        api.endpoint + path, headers={**build_hf_headers(token=api.token), **(headers or {})}, **kwargs
    )
    hf_raise_for_status(response, endpoint_name=endpoint_name)
    return response
