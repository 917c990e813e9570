"""A local server that speaks the Hub's HTTP protocol as ``huggingface_hub`` uses it.

Test code, not a product feature. It keeps repos (models, datasets, spaces) with
commits, branches and tags; stores file contents content-addressed by SHA-256;
answers the classic LFS batch protocol (Xet is off in the tests); and serves
downloads with ranges, so ``load_dataset("ORG/NAME")`` works through it.

Faults are injected per request: ``server.inject(Fault(...))`` makes the Nth
request that matches a method and a path pattern answer with a status code or
drop its connection half-way through reading the body. ``server.stats`` counts
requests, commits and the bytes that uploads carried.

Start it with :func:`serve` (a context manager); point the client at it with
``HF_ENDPOINT=server.url`` and ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_THRESHOLD = 10 * 1024 * 1024
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


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


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
    """Answer the ``nth`` request (1-based) matching ``method`` and ``path`` (a regex) with a fault.

    ``status``: reply with that HTTP status (and an error body) without doing anything;
    ``lost_reply``: do the work, then reply with ``status`` (a reply lost on the way back);
    ``drop``: read half the request body, then close the connection without a reply;
    ``before``: run this first (another client's commit, say), then answer normally.
    """

    method: str
    path: str
    nth: int = 1
    status: int | None = None
    drop: bool = False
    lost_reply: bool = False
    before: Callable[[], None] | None = None
    seen: int = 0
    fired: bool = False


@dataclass
class Stats:
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    commits: int = 0
    uploaded_bytes: int = 0  # LFS PUT bodies plus the decoded content of regular files in commits
    uploaded_files: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.commits = self.uploaded_bytes = self.uploaded_files = 0


class HubState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.tokens: set[str] = set()  # Authorization bearer tokens seen (the test checks they never leak)
        self.counter = 0

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
        self.blobs[sha] = data
        oid = git_blob_oid(lfs_pointer(sha, len(data))) if lfs else git_blob_oid(data)
        return sha, len(data), lfs, oid


class HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, body: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.body = status, code, body


class Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        if (override := getattr(self, "override", None)) is not None:
            self.override = None
            status, body, headers = override, json.dumps({"error": f"injected {override}"}).encode(), {}
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
                if fault.fired or fault.method != self.command or not re.search(fault.path, path):
                    continue
                fault.seen += 1
                if fault.seen < fault.nth:
                    continue
                fault.fired = True
                if fault.before is not None:
                    fault.before()
                    return False
                if fault.lost_reply:
                    self.override = fault.status
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
                assert fault.status is not None
                self._json(fault.status, {"error": f"injected fault {fault.status}"})
                return True
        return False

    def _dispatch(self) -> None:
        self.override: int | None = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.server.state.tokens.add(auth[7:])
        if self._fault():
            return
        try:
            self._route()
        except HubError as exc:
            headers = {"X-Error-Code": exc.code} if exc.code else {}
            headers["X-Error-Message"] = str(exc)
            self._json(exc.status, exc.body or {"error": str(exc)}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # -- routing ----------------------------------------------------------------------------

    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/whoami-v2", "whoami"),
        (
            "POST",
            r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)",
            "preupload",
        ),
        ("POST", r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/tag/(?P<rev>[^/]+)", "create_tag"),
        ("GET", r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/refs", "refs"),
        ("GET", r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/commits/(?P<rev>[^/]+)", "commits"),
        (
            "GET",
            r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?",
            "tree",
        ),
        (
            "POST",
            r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)",
            "paths_info",
        ),
        (
            "GET",
            r"/api/(?P<t>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?",
            "info",
        ),
        ("POST", r"/(?P<p>datasets/|spaces/)?(?P<id>[^/]+/[^/]+)\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs/upload/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("POST", r"/lfs/verify/(?P<oid>[0-9a-f]{64})", "lfs_verify"),
        (
            "GET",
            r"/(?P<p>datasets/|spaces/)?(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
            "resolve",
        ),
        (
            "HEAD",
            r"/(?P<p>datasets/|spaces/)?(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
            "resolve",
        ),
    )

    def _route(self) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        for method, pattern, name in self.ROUTES:
            if method == self.command and (match := re.fullmatch(pattern, url.path)):
                getattr(self, name)(**{k: unquote(v) if v else v for k, v in match.groupdict().items()})
                return
        raise HubError(404, f"no route for {self.command} {url.path}")

    # -- helpers ----------------------------------------------------------------------------

    def _repo(self, t: str | None = None, id: str = "", p: str | None = None) -> Repo:
        repo_type = (
            TYPES[t] if t else {None: "model", "": "model", "datasets/": "dataset", "spaces/": "space"}[p]
        )
        repo = self.server.state.repos.get((repo_type, unquote(id)))
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

    # -- endpoints --------------------------------------------------------------------------

    def whoami(self) -> None:
        if not self.headers.get("Authorization"):
            raise HubError(401, "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": "tester", "orgs": []})

    def validate_yaml(self) -> None:
        payload = json.loads(self._body())
        errors = []
        match = re.match(r"---\n(.*?)\n---", payload.get("content", ""), re.S)
        if match:
            try:
                yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                errors.append({"message": str(exc)})
        self._json(200, {"errors": errors, "warnings": []})

    def create_repo(self) -> None:
        payload = json.loads(self._body())
        state = self.server.state
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization'] or 'tester'}/{payload['name']}"
        url = f"{self.server.url}/{PREFIX[repo_type]}{repo_id}"
        with state.lock:
            if (repo_type, repo_id) in state.repos:
                raise HubError(409, "You already created this repo", body={"error": "exists", "url": url})
            repo = Repo(repo_type, repo_id, payload.get("visibility") == "private", payload.get("sdk"))
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
                "gated": False,
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
        self._json(200, out)

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
        repo = self._repo(t, id)
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
        self._repo(None, id, p or "")
        payload = json.loads(self._body())
        objects = []
        for obj in payload["objects"]:
            item: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.server.state.blobs:
                item["actions"] = {
                    "upload": {"href": f"{self.server.url}/lfs/upload/{obj['oid']}"},
                    "verify": {"href": f"{self.server.url}/lfs/verify/{obj['oid']}"},
                }
            objects.append(item)
        self._json(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, oid: str) -> None:
        data = self._body()
        state = self.server.state
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "content does not match its oid")
        with state.lock:
            state.blobs[oid] = data
            state.stats.uploaded_bytes += len(data)
            state.stats.uploaded_files += 1
        self._send(200)

    def lfs_verify(self, oid: str) -> None:
        payload = json.loads(self._body())
        data = self.server.state.blobs.get(oid)
        if data is None or len(data) != payload["size"]:
            raise HubError(404, f"object {oid} not stored")
        self._json(200, {"success": True})

    def commit(self, t: str, id: str, rev: str) -> None:
        state = self.server.state
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with state.lock:
            repo = self._repo(t, id)
            branch = unquote(rev)
            head = self._commit(repo, branch)
            header = next(line["value"] for line in lines if line["key"] == "header")
            if header.get("parentCommit") and header["parentCommit"] != head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            added = 0
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = state.store(data, lfs=False)
                    added += len(data)
                    state.stats.uploaded_files += 1
                elif key == "lfsFile":
                    data_ = state.blobs.get(value["oid"])
                    if data_ is None:
                        raise HubError(
                            400, f"LFS object {value['oid']} for {value['path']} was never uploaded"
                        )
                    files[value["path"]] = state.store(data_, lfs=True)
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(
                            404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound"
                        )
                    del files[value["path"]]
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: i for p, i in files.items() if not p.startswith(folder)}
            new = state.new_commit(repo, head, files, header["summary"], header.get("description", ""))
            repo.branches[branch] = new.oid
            state.stats.commits += 1
            state.stats.uploaded_bytes += added
        prefix = f"{self.server.url}/{PREFIX[repo.type]}{repo.id}"
        self._json(200, {"success": True, "commitOid": new.oid, "commitUrl": f"{prefix}/commit/{new.oid}"})

    def create_tag(self, t: str, id: str, rev: str) -> None:
        payload = json.loads(self._body())
        with self.server.state.lock:
            repo = self._repo(t, id)
            commit = self._commit(repo, rev)
            if payload["tag"] in repo.tags:
                raise HubError(409, f"Tag {payload['tag']} already exists")
            repo.tags[payload["tag"]] = commit.oid
        self._json(200, {})

    def resolve(self, id: str, rev: str, path: str, p: str | None = None) -> None:
        repo = self._repo(None, id, p or "")
        commit = self._commit(repo, rev)
        path = unquote(path)
        info = commit.files.get(path)
        if info is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        sha, size, lfs, oid = info
        data = self.server.state.blobs[sha]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{sha if lfs else oid}"', "Accept-Ranges": "bytes"}
        if lfs:
            headers |= {"X-Linked-ETag": f'"{sha}"', "X-Linked-Size": str(size)}
        status = 200
        if (rng := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", rng)):
            start = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
            end = int(m.group(2)) if m.group(1) and m.group(2) else size - 1
            end = min(end, size - 1)
            data = data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            status = 206
        headers["Content-Length"] = str(len(data))
        self._send(status, data, headers)


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _lfs_patterns(state: HubState, commit: Commit) -> list[str]:
    info = commit.files.get(".gitattributes")
    if info is None:
        return []
    text = state.blobs[info[0]].decode()
    return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line]


def _matches(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = HubState()
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

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> content of every file at ``revision``."""
        commit = self.repo(repo_type, repo_id).resolve(revision)
        assert commit is not None, revision
        return {path: self.state.blobs[info[0]] for path, info in commit.files.items()}


@contextlib.contextmanager
def serve() -> Iterator[HubServer]:
    server = HubServer()
    thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
