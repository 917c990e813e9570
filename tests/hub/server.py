"""A local server that models the Hugging Face Hub's HTTP API as ``huggingface_hub`` 2.4 uses it.

Test code, not a product feature: the Hub is out of reach in the tests, so the real
client (``HfApi``, ``hf_hub_download``, ``load_dataset``) runs against this server
through ``HF_ENDPOINT``. It is meant to be *strict*: where the Hub refuses something,
this server refuses it too, so that tests see the failures users meet.

What it models and what it does not
-----------------------------------

===============================  ===============================================================
the Hub                          here
===============================  ===============================================================
writes need a token              modelled: ``accounts`` maps a token to a user, its orgs and
                                 whether it may write. No or unknown token: 401 ("Invalid
                                 credentials in Authorization header" for an unknown one);
                                 a repo outside the token's namespaces, or a read-only
                                 token: 403. Reads of private repos need a token of the
                                 namespace (else 404 ``RepoNotFound``, as the Hub hides them).
README metadata                  modelled on ``/api/validate-yaml`` (400 with
                                 ``{"errors": [{"message"}]}``) and on commits that add a
                                 README.md: YAML must parse to a mapping; ``license`` must be
                                 a Hub licence id; a dataset's ``task_categories`` and a
                                 model's ``pipeline_tag`` must be Hub tasks; a dataset's
                                 ``size_categories`` must be Hub buckets; a Space's ``sdk``
                                 must be gradio, docker or static. The lists are in
                                 ``hub_rules.json``, each with its public source.
entries per folder               modelled: a commit that leaves more than 10,000 entries in a
                                 folder is refused (400).
tag names                        modelled: git's ref-name rules (``git check-ref-format``:
                                 no ``..``, spaces, ``~^:?*[\\``, control characters,
                                 ``@{``, leading ``-``/``.``, trailing ``/``, ``.`` or
                                 ``.lock``); an existing tag is 409.
commits                          modelled: NDJSON header, ``file`` (base64), ``lfsFile``,
                                 ``deletedFile``, ``deletedFolder``; ``parentCommit`` that is
                                 not the head is 412; an ``lfsFile`` never uploaded is 400.
LFS                              modelled: the batch API with ``basic`` transfer, and
                                 ``multipart`` (parts of ``multipart_chunk`` bytes,
                                 completion POST with the parts' ETags) for files of at least
                                 ``multipart_min`` bytes; verify. Objects are checked against
                                 their SHA-256 and stored on disk, streamed in 1 MiB chunks.
Xet                              **not modelled**: ``/api/{type}s/{id}/xet-write-token``
                                 answers 404 and is counted in ``stats.xet_requests``. The
                                 Hub accepts classic LFS uploads into Xet-backed repos
                                 (https://huggingface.co/docs/hub/xet/legacy-git-lfs).
tree listings                    modelled: paginated with a ``Link: <...>; rel="next"``
                                 header, 1,000 entries a page (50 with ``expand``), as
                                 huggingface_hub's ``list_repo_tree`` documents;
                                 ``page_size`` changes it.
downloads                        modelled: ``resolve`` with ``X-Repo-Commit``, ``ETag``,
                                 ``X-Linked-Size``, ranges.
5xx bodies                       injected faults answer 5xx with an HTML page (as the Hub's
                                 CDN does), the CDN's own 520-524 too (Cloudflare's reason
                                 phrases); ``Fault(html=False)`` gives a JSON body.
gated repos                      modelled: ``add_repo(..., gated="auto")``; the repo's info
                                 says ``gated``; its files need a token (else 401 with
                                 ``X-Error-Code: GatedRepo``). Access requests are not
                                 modelled: any known token may read.
rate limits                      injected: ``Fault(status=429, retry_after=N)`` sends
                                 ``Retry-After`` and the ``RateLimit`` header the Hub sends.
git over HTTP/SSH, pull          not modelled.
requests, discussions, Space
runtime and variables, access
requests, webhooks, quotas
===============================  ===============================================================

Faults are injected per request: ``server.inject(Fault(...))`` makes the Nth request
that matches a method and a path pattern (and ``times`` requests from there) answer
with a status code or drop its connection half-way through the body.
``server.stats`` counts requests, commits and uploaded bytes.

Start it with :func:`serve` (a context manager), or as a process for benchmarks:
``python -m tests.hub.server --token TOKEN:USER:ORG1,ORG2`` prints its URL.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import hashlib
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

RULES: dict[str, Any] = json.loads((Path(__file__).with_name("hub_rules.json")).read_text(encoding="utf-8"))
LFS_THRESHOLD = 10 * 1024 * 1024
CHUNK = 1024 * 1024
# The patterns the Hub writes into a new repo's .gitattributes (the ones that matter here).
GITATTRIBUTES = (
    "".join(
        f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
        for pattern in (
            "*.bin",
            "*.safetensors",
            "*.pt",
            "*.pth",
            "*.h5",
            "*.parquet",
            "*.arrow",
            "*.npy",
            "*.jpg",
            "*.jpeg",
            "*.png",
            "*.webp",
            "*.tif",
            "*.tiff",
            "*.zip",
        )
    )
).encode()
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Reason phrases of a CDN's own status codes, which http.HTTPStatus does not know:
# https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/
CDN_REASONS = {
    520: "Web server is returning an unknown error",
    521: "Web server is down",
    522: "Connection timed out",
    523: "Origin is unreachable",
    524: "A timeout occurred",
}
HTML_5XX = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def reason_phrase(status: int) -> str:
    """The reason phrase of a status code, the CDN's 52x included."""
    from http import HTTPStatus

    if status in CDN_REASONS:
        return CDN_REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


# -- the Hub's rules -----------------------------------------------------------------------------

# git check-ref-format (https://git-scm.com/docs/git-check-ref-format), for refs/tags/<name>.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def tag_name_problem(name: str) -> str | None:
    """Why git would refuse ``refs/tags/<name>``, or None."""
    if not name or name == "@":
        return "is empty or '@'"
    if _BAD_REF_CHARS.search(name):
        return "holds a space, a control character or one of ~^:?*[\\"
    if ".." in name or "@{" in name or "//" in name:
        return "holds '..', '@{' or '//'"
    if name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return "starts with '-' or '/', or ends with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "has a component that starts with '.' or ends with '.lock'"
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def metadata_errors(readme: str, repo_type: str) -> list[str]:
    """The Hub's refusals of a README's YAML metadata (empty when it would accept it)."""
    match = re.match(r"---\r?\n(.*?)\r?\n---(\r?\n|$)", readme, re.S)
    if match is None:
        return []
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"Invalid YAML in README.md metadata: {str(exc).splitlines()[0]}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["README.md metadata must be a YAML mapping"]
    errors = []
    for value in _as_list(data.get("license", [])):
        if value not in RULES["licenses"]:
            errors.append(f'"license" must be one of the Hub\'s licence identifiers, got {value!r}')
    checks: list[tuple[str, str]] = []
    if repo_type == "dataset":
        checks = [("task_categories", "task_categories"), ("size_categories", "size_categories")]
    elif repo_type == "model":
        checks = [("pipeline_tag", "task_categories")]
    for key, rule in checks:
        for value in _as_list(data.get(key, [])):
            if value not in RULES[rule]:
                errors.append(f'"{key}" must be one of the Hub\'s {rule.replace("_", " ")}, got {value!r}')
    if repo_type == "space" and data.get("sdk") not in RULES["space_sdks"]:
        errors.append(f'"sdk" must be one of {RULES["space_sdks"]}, got {data.get("sdk")!r}')
    return errors


# -- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """What a token stands for: a user, the orgs it belongs to, and whether it may write."""

    name: str
    orgs: tuple[str, ...] = ()
    write: bool = True

    def owns(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    files: dict[str, tuple[str, int, bool, str]]  # path -> (sha256, size, lfs, git oid)
    created: float


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    sdk: str | None
    commits: dict[str, Commit] = field(default_factory=dict)
    gated: bool | str = False  # False, or the Hub's "auto"/"manual": files need a token
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision in self.commits:
            oid = revision
        return self.commits.get(oid) if oid else None


@dataclass
class Fault:
    """Answer the ``nth`` request (1-based) matching ``method`` and ``path`` (a regex), and the
    ``times - 1`` matching requests after it, with a fault.

    ``status``: reply with that HTTP status without doing anything (5xx bodies are an HTML
    page unless ``html=False``; ``retry_after`` adds ``Retry-After`` and ``RateLimit``
    headers; ``body`` replaces the body);
    ``lost_reply``: do the work, then reply with ``status`` (a reply lost on the way back);
    ``drop``: read half the request body, then close the connection without a reply;
    ``before``: run this first (another client's commit, say), then answer normally.
    """

    method: str
    path: str
    nth: int = 1
    status: int | None = None
    times: int = 1
    drop: bool = False
    lost_reply: bool = False
    html: bool | None = None
    retry_after: int | None = None
    body: bytes | None = None
    before: Callable[[], None] | None = None
    seen: int = 0
    fired: int = 0

    def reply(self) -> tuple[int, bytes, dict[str, str]]:
        assert self.status is not None
        status = self.status
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
            headers["RateLimit"] = f'"api";r=0;t={self.retry_after}'
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        if self.body is not None:
            return status, self.body, headers
        if self.html if self.html is not None else status >= 500:
            reason = reason_phrase(status)
            body = HTML_5XX.format(status=status, reason=reason).encode()
            return status, body, {**headers, "Content-Type": "text/html"}
        error = {"error": f"injected fault {status}"}
        return status, json.dumps(error).encode(), {**headers, "Content-Type": "application/json"}


@dataclass
class Stats:
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    commits: int = 0
    uploaded_bytes: int = 0  # LFS PUT bodies plus the decoded content of regular files in commits
    uploaded_files: int = 0
    xet_requests: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.commits = self.uploaded_bytes = self.uploaded_files = self.xet_requests = 0


class HubState:
    def __init__(self, root: Path, accounts: Mapping[str, Account]) -> None:
        self.lock = threading.RLock()
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "parts").mkdir(exist_ok=True)
        self.accounts = dict(accounts)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.tokens: set[str] = set()  # Authorization bearer tokens seen (tests check they never leak)
        self.counter = 0
        self.page_size = 1000
        self.multipart_min = 64 * CHUNK
        self.multipart_chunk = 16 * CHUNK

    def blob(self, sha: str) -> Path:
        return self.root / "blobs" / sha

    def has_blob(self, sha: str) -> bool:
        return self.blob(sha).is_file()

    def read_blob(self, sha: str) -> bytes:
        return self.blob(sha).read_bytes()

    def new_commit(
        self,
        repo: Repo,
        parent: Commit | None,
        files: dict[str, tuple[str, int, bool, str]],
        title: str,
        desc: str,
    ) -> Commit:
        self.counter += 1
        seed = f"{repo.type}/{repo.id}/{self.counter}/{title}".encode()
        commit = Commit(
            hashlib.sha1(seed, usedforsecurity=False).hexdigest(),
            parent.oid if parent else None,
            title,
            desc,
            files,
            time.time(),
        )
        repo.commits[commit.oid] = commit
        return commit

    def store(self, data: bytes, lfs: bool) -> tuple[str, int, bool, str]:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha):
            self.blob(sha).write_bytes(data)
        oid = git_blob_oid(lfs_pointer(sha, len(data))) if lfs else git_blob_oid(data)
        return sha, len(data), lfs, oid

    def entry_of_blob(self, sha: str, lfs: bool) -> tuple[str, int, bool, str]:
        size = self.blob(sha).stat().st_size
        if lfs:
            return sha, size, True, git_blob_oid(lfs_pointer(sha, size))
        return self.store(self.read_blob(sha), lfs=False)


class Aborted(Exception):
    """A request whose body ended before its Content-Length: the client gave up on it."""


class HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, body: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.body = status, code, body


# -- the handler ---------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The request body in pieces of at most 1 MiB (Content-Length or chunked encoding)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while size:
                    piece = self.rfile.read(min(size, CHUNK))
                    if not piece:
                        return
                    size -= len(piece)
                    yield piece
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            length = min(length, limit)
        while length:
            piece = self.rfile.read(min(length, CHUNK))
            if not piece:
                return
            length -= len(piece)
            yield piece

    def _body(self) -> bytes:
        if getattr(self, "consumed", False):
            return b""
        self.consumed = True
        data = b"".join(self._chunks())
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if not chunked and len(data) < int(self.headers.get("Content-Length") or 0):
            raise Aborted  # a server never acts on half a request
        return data

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        if (override := getattr(self, "override", None)) is not None:
            self.override = None
            status, body, headers = override.reply()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.state.stats.requests.append((self.command, self.path, status))

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _fault(self) -> bool:
        state = self.server.state
        path = urlsplit(self.path).path
        with state.lock:
            for fault in state.faults:
                if fault.fired >= fault.times or fault.method != self.command:
                    continue
                if not re.search(fault.path, path):
                    continue
                fault.seen += 1
                if fault.seen < fault.nth:
                    continue
                fault.fired += 1
                if fault.before is not None:
                    fault.before()
                    return False
                if fault.lost_reply:
                    self.override = fault
                    return False
                if fault.drop:
                    length = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(length // 2)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    state.stats.requests.append((self.command, self.path, 0))
                    return True
                self._body()
                status, body, headers = fault.reply()
                self._send(status, body, headers)
                return True
        return False

    def _dispatch(self) -> None:
        self.override: Fault | None = None
        self.consumed = False
        if self._fault():
            return
        try:
            self._route()
        except Aborted:
            self.close_connection = True
            self.server.state.stats.requests.append((self.command, self.path, 0))
        except HubError as exc:
            headers = {"X-Error-Code": exc.code} if exc.code else {}
            headers["X-Error-Message"] = str(exc).splitlines()[0]
            self._body()  # an unread body would be taken for the next request on this connection
            self._json(exc.status, exc.body or {"error": str(exc)}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # -- routing ----------------------------------------------------------------------------

    _T = r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)"
    _P = r"/(?P<p>datasets/|spaces/)?(?P<id>[^/]+/[^/]+)"
    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/whoami-v2", "whoami"),
        ("GET", _T + r"/xet-(?:write|read)-token/(?P<rev>[^/]+)", "xet_token"),
        ("POST", _T + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", _T + r"/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", _T + r"/tag/(?P<rev>[^/]+)", "create_tag"),
        ("GET", _T + r"/refs", "refs"),
        ("GET", _T + r"/commits/(?P<rev>[^/]+)", "commits"),
        ("GET", _T + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", _T + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("GET", _T + r"(?:/revision/(?P<rev>[^/]+))?", "info"),
        ("POST", _P + r"\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs/upload/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("PUT", r"/lfs/part/(?P<oid>[0-9a-f]{64})/(?P<n>\d+)", "lfs_part"),
        ("POST", r"/lfs/complete/(?P<oid>[0-9a-f]{64})", "lfs_complete"),
        ("POST", r"/lfs/verify/(?P<oid>[0-9a-f]{64})", "lfs_verify"),
        ("GET", _P + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("HEAD", _P + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    )

    def _route(self) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        for method, pattern, name in self.ROUTES:
            if method == self.command and (match := re.fullmatch(pattern, url.path)):
                getattr(self, name)(**{k: unquote(v) if v else v for k, v in match.groupdict().items()})
                return
        raise HubError(404, f"no route for {self.command} {url.path}")

    # -- credentials ------------------------------------------------------------------------

    def _account(self) -> Account | None:
        """The caller's account; an unknown token is 401, as on the Hub."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return None
        token = auth[7:].strip()
        self.server.state.tokens.add(token)
        account = self.server.state.accounts.get(token)
        if account is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return account

    def _may_write(self, namespace: str, what: str) -> Account:
        account = self._account()
        if account is None:
            raise HubError(401, f"You must be authenticated to {what}")
        if not account.write:
            raise HubError(403, f"Your token has read access only; {what} needs a write token")
        if not account.owns(namespace):
            raise HubError(
                403, f"You don't have the rights to {what} under the namespace {namespace!r}", "Forbidden"
            )
        return account

    # -- helpers ----------------------------------------------------------------------------

    def _repo(self, t: str | None = None, id: str = "", p: str | None = None, write: str = "") -> Repo:
        """The repo named by the route; ``write`` names the action when the caller must own it."""
        repo_type = (
            TYPES[t] if t else {None: "model", "": "model", "datasets/": "dataset", "spaces/": "space"}[p]
        )
        repo = self.server.state.repos.get((repo_type, unquote(id)))
        namespace = unquote(id).split("/")[0]
        if write:
            self._may_write(namespace, write)
        elif repo is not None and repo.private:
            account = self._account()
            if account is None or not account.owns(namespace):
                repo = None
        else:
            self._account()  # an unknown token is refused on reads too
        if repo is None:
            raise HubError(404, f"Repository {id} not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, rev: str | None) -> Commit:
        commit = repo.resolve(rev or "main")
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _entry(self, path: str, info: tuple[str, int, bool, str]) -> dict[str, Any]:
        sha, size, lfs, oid = info
        entry: dict[str, Any] = {"type": "file", "path": path, "size": size, "oid": oid}
        if lfs:
            entry["lfs"] = {"oid": sha, "size": size, "pointerSize": len(lfs_pointer(sha, size))}
        return entry

    @staticmethod
    def _dirs(commit: Commit) -> set[str]:
        return {str(parent) for path in commit.files for parent in _parents(path)}

    def _stream_to(self, target: Path, limit: int | None = None) -> tuple[str, int]:
        """Write the request body to ``target`` in 1 MiB chunks; (its SHA-256, its size)."""
        digest, size = hashlib.sha256(), 0
        with target.open("wb") as out:
            for piece in self._chunks(limit):
                digest.update(piece)
                out.write(piece)
                size += len(piece)
        self.consumed = True
        return digest.hexdigest(), size

    # -- endpoints --------------------------------------------------------------------------

    def whoami(self) -> None:
        account = self._account()
        if account is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org} for org in account.orgs]
        role = "write" if account.write else "read"
        self._json(
            200,
            {
                "type": "user",
                "name": account.name,
                "orgs": orgs,
                "auth": {"accessToken": {"role": role}},
            },
        )

    def validate_yaml(self) -> None:
        payload = json.loads(self._body())
        errors = metadata_errors(payload.get("content", ""), payload.get("repoType") or "model")
        if errors:
            raise HubError(
                400, "Invalid metadata", body={"errors": [{"message": e} for e in errors], "warnings": []}
            )
        self._json(200, {"errors": [], "warnings": []})

    def xet_token(self, t: str, id: str, rev: str) -> None:
        with self.server.state.lock:
            self.server.state.stats.xet_requests += 1
        raise HubError(404, "Xet is not modelled by this server; upload with classic LFS")

    def create_repo(self) -> None:
        payload = json.loads(self._body())
        state = self.server.state
        account = self._account()
        if account is None:
            raise HubError(401, "You must be authenticated to create a repo")
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or account.name
        self._may_write(namespace, f"create a {repo_type}")
        name = payload["name"]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name) or ".." in name or "--" in name:
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.server.url}/{PREFIX[repo_type]}{repo_id}"
        with state.lock:
            if (repo_type, repo_id) in state.repos:
                raise HubError(409, "You already created this repo", body={"error": "exists", "url": url})
            private = payload.get("visibility") == "private" or payload.get("private") is True
            repo = Repo(repo_type, repo_id, private, payload.get("sdk"))
            files = {".gitattributes": state.store(GITATTRIBUTES, lfs=False)}
            repo.branches["main"] = state.new_commit(repo, None, files, "initial commit", "").oid
            state.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": url, "name": repo_id})

    def info(self, t: str, id: str, rev: str | None = None) -> None:
        repo = self._repo(t, id)
        commit = self._commit(repo, rev)
        self._json(
            200,
            {
                "id": repo.id,
                "_id": hashlib.md5(repo.id.encode(), usedforsecurity=False).hexdigest()[:24],
                "author": repo.id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
                "tags": [],
                "downloads": 0,
                "likes": 0,
                **({"sdk": repo.sdk} if repo.sdk else {}),
            },
        )

    def refs(self, t: str, id: str) -> None:
        repo = self._repo(t, id)

        def ref(kind: str, name: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

        self._json(
            200,
            {
                "branches": [ref("heads", n, o) for n, o in repo.branches.items()],
                "tags": [ref("tags", n, o) for n, o in repo.tags.items()],
                "converts": [],
                "pullRequests": [],
            },
        )

    def commits(self, t: str, id: str, rev: str) -> None:
        repo = self._repo(t, id)
        commit: Commit | None = self._commit(repo, rev)
        out = []
        while commit is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created))
            out.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [],
                    "date": stamp,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(200, out)

    def tree(self, t: str, id: str, rev: str, path: str | None = None) -> None:
        repo = self._repo(t, id)
        commit = self._commit(repo, rev)
        base = (path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        dirs = self._dirs(commit)
        if base and base not in dirs:
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound")
        out: list[dict[str, Any]] = []
        prefix = f"{base}/" if base else ""
        for d in sorted(dirs):
            if d.startswith(prefix) and d != base and (recursive or "/" not in d[len(prefix) :]):
                out.append({"type": "directory", "path": d, "size": 0, "oid": git_blob_oid(d.encode())})
        for p, info in sorted(commit.files.items()):
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                out.append(self._entry(p, info))
        # Pagination as on the Hub: a Link header names the next page.
        size = 50 if expand else self.server.state.page_size
        cursor = self.query.get("cursor", [""])[0]
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        page, headers = out[start : start + size], {}
        if start + size < len(out):
            nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            params = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}&cursor={quote(nxt)}"
            route = urlsplit(self.path).path
            headers["Link"] = f'<{self.server.url}{route}?{params}>; rel="next"'
        self._json(200, page, headers)

    def paths_info(self, t: str, id: str, rev: str) -> None:
        repo = self._repo(t, id)
        commit = self._commit(repo, rev)
        body = self._body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        dirs = self._dirs(commit)
        out: list[dict[str, Any]] = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files:
                out.append(self._entry(p, commit.files[p]))
            elif p in dirs:
                out.append({"type": "directory", "path": p, "size": 0, "oid": git_blob_oid(p.encode())})
        self._json(200, out)

    def preupload(self, t: str, id: str, rev: str) -> None:
        repo = self._repo(t, id, write="upload files")
        commit = self._commit(repo, rev)
        payload = json.loads(self._body())
        patterns = _lfs_patterns(self.server.state, commit)
        files = []
        for item in payload["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["size"] > LFS_THRESHOLD or b"\0" in sample or _matches(item["path"], patterns)
            remote = commit.files.get(item["path"])
            oid = (remote[0] if remote[2] else remote[3]) if remote else None
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._json(200, {"files": files, "commitOid": commit.oid})

    def lfs_batch(self, id: str, p: str | None = None) -> None:
        self._repo(None, id, p or "", write="upload files")
        payload = json.loads(self._body())
        state = self.server.state
        transfers = payload.get("transfers") or ["basic"]
        multipart = "multipart" in transfers
        objects = []
        for obj in payload["objects"]:
            item: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if not state.has_blob(obj["oid"]):
                verify = {"href": f"{self.server.url}/lfs/verify/{obj['oid']}"}
                if multipart and obj["size"] >= state.multipart_min:
                    parts = -(-obj["size"] // state.multipart_chunk)
                    header = {"chunk_size": str(state.multipart_chunk)}
                    header |= {
                        str(n): f"{self.server.url}/lfs/part/{obj['oid']}/{n}" for n in range(1, parts + 1)
                    }
                    upload = {"href": f"{self.server.url}/lfs/complete/{obj['oid']}", "header": header}
                else:
                    upload = {"href": f"{self.server.url}/lfs/upload/{obj['oid']}"}
                item["actions"] = {"upload": upload, "verify": verify}
            objects.append(item)
        used = (
            "multipart"
            if multipart and any("header" in o.get("actions", {}).get("upload", {}) for o in objects)
            else "basic"
        )
        self._json(200, {"transfer": used, "objects": objects, "hash_algo": "sha256"})

    def lfs_upload(self, oid: str) -> None:
        state = self.server.state
        partial = state.root / "parts" / f"{oid}.{threading.get_ident()}.upload"
        sha, size = self._stream_to(partial)
        if sha != oid:
            partial.unlink()
            raise HubError(400, "content does not match its oid")
        partial.replace(state.blob(oid))
        with state.lock:
            state.stats.uploaded_bytes += size
            state.stats.uploaded_files += 1
        self._send(200)

    def lfs_part(self, oid: str, n: str) -> None:
        folder = self.server.state.root / "parts" / oid
        folder.mkdir(exist_ok=True)
        sha, size = self._stream_to(folder / f"{int(n):05d}")
        with self.server.state.lock:
            self.server.state.stats.uploaded_bytes += size
        self._send(200, b"", {"ETag": f'"{sha}"'})

    def lfs_complete(self, oid: str) -> None:
        state = self.server.state
        payload = json.loads(self._body())
        folder = state.root / "parts" / oid
        parts = sorted(payload["parts"], key=lambda part: part["partNumber"])
        digest = hashlib.sha256()
        partial = folder / "complete"
        with partial.open("wb") as out:
            for part in parts:
                piece = folder / f"{part['partNumber']:05d}"
                if not piece.is_file():
                    raise HubError(400, f"part {part['partNumber']} of {oid} was never uploaded")
                with piece.open("rb") as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != oid:
            shutil.rmtree(folder)
            raise HubError(400, "the parts do not make up the object's oid")
        partial.replace(state.blob(oid))
        shutil.rmtree(folder)
        with state.lock:
            state.stats.uploaded_files += 1
        self._json(200, {"success": True})

    def lfs_verify(self, oid: str) -> None:
        payload = json.loads(self._body())
        state = self.server.state
        if not state.has_blob(oid) or state.blob(oid).stat().st_size != payload["size"]:
            raise HubError(404, f"object {oid} not stored")
        self._json(200, {"success": True})

    def commit(self, t: str, id: str, rev: str) -> None:
        state = self.server.state
        repo = self._repo(t, id, write="commit")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with state.lock:
            branch = unquote(rev)
            head = self._commit(repo, branch)
            header = next(line["value"] for line in lines if line["key"] == "header")
            if header.get("parentCommit") and header["parentCommit"] != head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            added, count = 0, 0
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    if value["path"] == "README.md":
                        errors = metadata_errors(data.decode("utf-8", "replace"), repo.type)
                        if errors:
                            raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
                    files[value["path"]] = state.store(data, lfs=False)
                    added += len(data)
                    count += 1
                elif key == "lfsFile":
                    if not state.has_blob(value["oid"]):
                        raise HubError(
                            400, f"LFS object {value['oid']} for {value['path']} was never uploaded"
                        )
                    files[value["path"]] = state.entry_of_blob(value["oid"], lfs=True)
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(
                            404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound"
                        )
                    del files[value["path"]]
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: i for p, i in files.items() if not p.startswith(folder)}
            crowded = _crowded(files, RULES["files_per_folder"])
            if crowded:
                folder, n = crowded
                raise HubError(
                    400,
                    f"Too many entries in folder {folder or '/'!r}: {n} (the Hub allows "
                    f"{RULES['files_per_folder']} per folder); use subdirectories",
                )
            new = state.new_commit(repo, head, files, header["summary"], header.get("description", ""))
            repo.branches[branch] = new.oid
            state.stats.commits += 1
            state.stats.uploaded_bytes += added
            state.stats.uploaded_files += count
        prefix = f"{self.server.url}/{PREFIX[repo.type]}{repo.id}"
        self._json(200, {"success": True, "commitOid": new.oid, "commitUrl": f"{prefix}/commit/{new.oid}"})

    def create_tag(self, t: str, id: str, rev: str) -> None:
        payload = json.loads(self._body())
        repo = self._repo(t, id, write="create a tag")
        name = payload.get("tag", "")
        if (problem := tag_name_problem(name)) is not None:
            raise HubError(400, f"Invalid tag name {name!r}: it {problem}")
        with self.server.state.lock:
            commit = self._commit(repo, rev)
            if name in repo.tags:
                raise HubError(409, f"Tag {name} already exists")
            repo.tags[name] = commit.oid
        self._json(200, {})

    def resolve(self, id: str, rev: str, path: str, p: str | None = None) -> None:
        repo = self._repo(None, id, p or "")
        if repo.gated and self._account() is None:
            raise HubError(
                401,
                f"Access to {repo.type} {repo.id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                "GatedRepo",
            )
        commit = self._commit(repo, rev)
        path = unquote(path)
        info = commit.files.get(path)
        if info is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        sha, size, lfs, oid = info
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{sha if lfs else oid}"', "Accept-Ranges": "bytes"}
        if lfs:
            headers |= {"X-Linked-ETag": f'"{sha}"', "X-Linked-Size": str(size)}
        status, start, end = 200, 0, size - 1
        if (rng := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", rng)):
            start = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
            end = int(m.group(2)) if m.group(1) and m.group(2) else size - 1
            end = min(end, size - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            status = 206
        headers["Content-Length"] = str(max(0, end - start + 1))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            with self.server.state.blob(sha).open("rb") as src:
                src.seek(start)
                left = end - start + 1
                while left > 0 and (block := src.read(min(left, CHUNK))):
                    self.wfile.write(block)
                    left -= len(block)
        self.server.state.stats.requests.append((self.command, self.path, status))


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _crowded(files: Mapping[str, Any], limit: int) -> tuple[str, int] | None:
    """The first folder with more than ``limit`` entries (files and subfolders), if any."""
    entries: dict[str, set[str]] = {}
    for path in files:
        parts = path.split("/")
        for depth in range(len(parts)):
            entries.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    for folder, names in sorted(entries.items()):
        if len(names) > limit:
            return folder, len(names)
    return None


def _lfs_patterns(state: HubState, commit: Commit) -> list[str]:
    info = commit.files.get(".gitattributes")
    if info is None:
        return []
    text = state.read_blob(info[0]).decode()
    return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line]


def _matches(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, accounts: Mapping[str, Account], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = HubState(root, accounts)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    # -- what tests use ---------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        return self.state.stats

    def inject(self, fault: Fault) -> Fault:
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        return self.state.repos[(repo_type, repo_id)]

    def add_repo(
        self,
        repo_type: str,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        private: bool = False,
        gated: bool | str = False,
    ) -> Repo:
        """A repo of any namespace (someone else's: a base model), with ``files`` on main."""
        with self.state.lock:
            repo = Repo(repo_type, repo_id, private, "gradio" if repo_type == "space" else None, gated=gated)
            stored = {".gitattributes": self.state.store(GITATTRIBUTES, lfs=False)}
            for path, data in files.items():
                stored[path] = self.state.store(data, lfs=path.endswith((".safetensors", ".bin", ".jpg")))
            repo.branches["main"] = self.state.new_commit(repo, None, stored, "initial commit", "").oid
            self.state.repos[(repo_type, repo_id)] = repo
            return repo

    def commit_file(self, repo_type: str, repo_id: str, path: str, data: bytes) -> str:
        """Another client's commit on ``main`` (to make a plan stale)."""
        with self.state.lock:
            repo = self.repo(repo_type, repo_id)
            head = repo.resolve("main")
            assert head is not None
            files = {**head.files, path: self.state.store(data, lfs=False)}
            commit = self.state.new_commit(repo, head, files, f"add {path}", "")
            repo.branches["main"] = commit.oid
            return commit.oid

    def tag(self, repo_type: str, repo_id: str, name: str, revision: str = "main") -> str:
        """Another client's tag (to race a publish)."""
        with self.state.lock:
            repo = self.repo(repo_type, repo_id)
            commit = repo.resolve(revision)
            assert commit is not None, revision
            repo.tags[name] = commit.oid
            return commit.oid

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> content of every file at ``revision``."""
        commit = self.repo(repo_type, repo_id).resolve(revision)
        assert commit is not None, revision
        return {path: self.state.read_blob(info[0]) for path, info in commit.files.items()}


@contextlib.contextmanager
def serve(accounts: Mapping[str, Account] | None = None, root: Path | None = None) -> Iterator[HubServer]:
    """A running server on a free loopback port; blobs live under ``root`` (a temporary folder)."""
    with contextlib.ExitStack() as stack:
        folder = root or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="local-hub-")))
        server = HubServer(folder, accounts or {})
        thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local Hub server in this process.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", type=Path, help="where blobs are stored (default: a temporary folder)")
    parser.add_argument("--token", action="append", default=[], help="TOKEN:USER[:ORG1,ORG2] (repeatable)")
    args = parser.parse_args()
    accounts = {}
    for spec in args.token:
        token, user, *orgs = spec.split(":")
        accounts[token] = Account(user, tuple(o for o in (orgs[0].split(",") if orgs else []) if o))
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="local-hub-")))
        server = HubServer(root, accounts, args.port)
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
