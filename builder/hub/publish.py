"""Release pushes of the dataset, the model (LoRA adapter) and the Space to the Hub.

One publish is: **gate** (:mod:`builder.hub.bundles`) → **plan** (local files against the
remote tree: SHA-256 for LFS files, git blob ids for regular ones) → **one commit**
that adds, changes and deletes exactly what the plan says, with ``parent_commit`` set
so a remote that moved under us is a conflict, never an overwrite → **one tag** on
that commit. A tag is never moved, and a dataset's tag is ``v<release version>``
unless the caller explicitly allows another name.

Uploads use classic LFS, streamed from disk, and every byte sent is checked against
the SHA-256 the gate computed (:mod:`builder.hub.client` says how). A repo's visibility is
never changed: ``private`` creates a new repo private and refuses an existing public
one.

Failures: transient ones (HTTP 408/429, 500/502/503/504, a CDN's 520-524, HTML error
pages, dropped connections) are retried: the whole publish is tried ``attempts``
times in all (huggingface_hub's own retries are off, :func:`builder.hub.client.single_tries`),
waiting ``backoff_s`` doubled each time, or the Hub's ``Retry-After``; no wait is
longer than ``max_wait_s`` (a longer ``Retry-After`` stops the publish and says when
to retry). Every retry plans again from the remote, so a commit whose reply was lost
is found on the remote instead of being made twice; a run stopped between its commit
and its tag is finished by running it again. Every other failure is a
:class:`~builder.errors.PublishError` whose one line gives the Hub's own message and
what the remote holds now; Ctrl-C says the same (:class:`~builder.errors.Interrupted`).
The token travels only in the Authorization header and is scrubbed from every message.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from builder.domain import BASE_MODEL, MAX_FILES_PER_FOLDER, hub_id_problem
from builder.errors import Interrupted, PublishConflictError, PublishError
from builder.hub import client as hub
from builder.hub import commit as hub_commit
from builder.hub.bundles import Bundle, Kind, LocalFile, json_object

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd, HfApi

T = TypeVar("T")
# Files the Hub writes into a new repo; a release does not own them and never deletes them.
HUB_MANAGED = frozenset({".gitattributes"})
SHOWN_PER_KIND = 20
# The longest --backoff or --max-wait accepted: a day. Longer waits are mistakes (1e308).
MAX_SECONDS = 86_400.0
# git check-ref-format (https://git-scm.com/docs/git-check-ref-format) for refs/tags/<name>.
_BAD_TAG = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|[/.]$|\.lock(/|$)|/\.")
# Names a revision already means on the Hub: its branch, git's HEAD, its pull requests
# (refs/pr/N), and a commit id (git: "Git normally never creates a ref that ends with 40 hex
# characters because it will be ignored when you just specify 40-hex", object-name.c).
_TAKEN_TAG = re.compile(r"(?i)main|head|refs/.*|[0-9a-f]{40}|[0-9a-f]{64}")
SPACE_SECRETS = "https://huggingface.co/docs/hub/spaces-overview#managing-secrets"


def check_tag(tag: str, version: str | None, other_tag_ok: bool) -> None:
    """A tag git accepts, that names no branch or commit, and, for a versioned release,
    ``v<version>`` unless explicitly allowed."""
    if not tag or tag == "@" or _BAD_TAG.search(tag):
        raise PublishError(
            f"tag {tag!r} is not a valid git tag name (not empty; no spaces, '..', '~^:?*[\\', '@{{', "
            "leading '-' or '.', trailing '/', '.' or '.lock'); use e.g. v1.0.0"
        )
    if _TAKEN_TAG.fullmatch(tag):
        raise PublishError(
            f"tag {tag!r} would be read as a branch, HEAD, a pull request or a commit id on the Hub "
            "(a revision names those first); use e.g. v1.0.0"
        )
    if version is not None and tag != f"v{version}" and not other_tag_ok:
        raise PublishError(
            f"tag {tag} does not name this release's version {version} (expected v{version}); "
            f"tag it v{version}, or pass --other-tag to publish {version} under {tag}"
        )


# -- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retries:
    """How often a Hub call is tried in all, and how long to wait between tries."""

    attempts: int = 4
    backoff_s: float = 2.0  # the first wait; doubled after each failure
    max_wait_s: float = 60.0  # no wait is longer; a longer Retry-After stops

    def check(self) -> None:
        if self.attempts < 1 or not all(
            0 <= s <= MAX_SECONDS and math.isfinite(s) for s in (self.backoff_s, self.max_wait_s)
        ):
            raise PublishError(
                f"attempts {self.attempts}, backoff {self.backoff_s} s, max wait {self.max_wait_s} s: "
                f"give at least 1 attempt and waits from 0 to {MAX_SECONDS:.0f} s"
            )

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): backoff doubled, capped."""
        return min(self.backoff_s * 2.0 ** min(attempt - 1, 60), self.max_wait_s)


def _redacted(exc: PublishError, token: str | None) -> PublishError:
    clean = hub.redact(str(exc), token)
    return exc if clean == str(exc) else type(exc)(clean)


def retrying(
    call: Callable[[], T],
    retries: Retries,
    *,
    give_up: Callable[[hub.HubFailure, int], PublishError],
    state: Callable[[hub.HubFailure | None], str],
    token: str | None,
    say: Callable[[str], None],
) -> tuple[T, int]:
    """``call()`` tried up to ``retries.attempts`` times on transient Hub failures; (its result, tries).

    Every request inside is tried once by huggingface_hub (:func:`builder.hub.client.single_tries`),
    so this loop is the only one. ``give_up(failure, attempt)`` makes the error for a
    failure that is not retried (or the last one); ``state(failure)`` says what the remote
    holds, for the other errors and for Ctrl-C.
    """
    try:
        for attempt in range(1, retries.attempts + 1):
            try:
                with hub.classic_lfs(), hub.single_tries():
                    return call(), attempt
            except hub.SourceChangedError as exc:
                raise type(exc)(hub.redact(f"{exc}; {state(None)}", token)) from None
            except PublishError as exc:
                raise _redacted(exc, token) from None
            except Exception as exc:
                changed = hub.changed_source(exc)
                if changed is not None:
                    raise type(changed)(hub.redact(f"{changed}; {state(None)}", token)) from None
                failure = hub.classify(exc)
                if failure is None:
                    raise  # not the Hub's doing: a bug, shown with its traceback
                if failure.kind != "transient" or attempt == retries.attempts:
                    raise _redacted(give_up(failure, attempt), token) from None
                _wait(failure, attempt, retries, state, token, say)
    except KeyboardInterrupt:
        raise Interrupted(hub.redact(state(None), token)) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _wait(
    failure: hub.HubFailure,
    attempt: int,
    retries: Retries,
    state: Callable[[hub.HubFailure | None], str],
    token: str | None,
    say: Callable[[str], None],
) -> None:
    message = hub.redact(failure.message, token)
    if failure.retry_after is not None:
        if failure.retry_after > retries.max_wait_s:
            raise PublishError(
                f"the Hub asks to wait {failure.retry_after:.0f} s before retrying ({message}), more than "
                f"--max-wait {retries.max_wait_s:g} s: run publish again in {failure.retry_after:.0f} s; "
                f"{hub.redact(state(failure), token)}"
            )
        wait = failure.retry_after
        say(f"attempt {attempt} failed ({message}); the Hub asks to wait {wait:g} s (Retry-After): waiting")
    else:
        wait = retries.wait(attempt)
        say(f"attempt {attempt} failed ({message}); retrying in {wait:g} s")
    time.sleep(wait)


def offline_error(doing: str, state: str) -> PublishError:
    return PublishError(
        f"HF_HUB_OFFLINE is set: huggingface_hub sends no request in offline mode, so {doing} cannot "
        f"run; unset HF_HUB_OFFLINE and run again; {state}"
    )


# -- plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    git_oid: str
    sha256: str | None  # set for LFS files

    def same_as(self, local: LocalFile) -> bool:
        if self.sha256 is not None:
            return self.sha256 == local.sha256
        return self.git_oid == local.git_oid


@dataclass(frozen=True)
class Plan:
    repo_id: str
    kind: Kind
    head: str | None  # the remote commit planned against; None when the repo does not exist yet
    added: tuple[LocalFile, ...]
    changed: tuple[LocalFile, ...]
    deleted: tuple[RemoteFile, ...]
    unchanged: int
    private: bool | None = None  # the repo's visibility (a new one: as it will be created)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in (*self.added, *self.changed))

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged"
        )

    def lines(self) -> Iterator[str]:
        seen = "private" if self.private else "public"
        where = (
            f"remote head {self.head[:12]}, {seen}"
            if self.head
            else f"new {'private ' * bool(self.private)}repo"
        )
        yield (
            f"plan for {self.kind} {self.repo_id} ({where}): {self.summary()}, "
            f"{human(self.upload_bytes)} to upload"
        )
        for sign, files in (("+", self.added), ("~", self.changed), ("-", self.deleted)):
            for f in files[:SHOWN_PER_KIND]:
                yield f"  {sign} {f.path} ({human(f.size)})"
            if len(files) > SHOWN_PER_KIND:
                yield f"  {sign} ... and {len(files) - SHOWN_PER_KIND} more"


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def make_plan(
    repo_id: str,
    kind: Kind,
    head: str | None,
    local: Iterable[LocalFile],
    remote: dict[str, RemoteFile],
    private: bool | None = None,
) -> Plan:
    """Compare the local files with the remote tree: what to add, change and delete."""
    added, changed, unchanged = [], [], 0
    mine = {f.path: f for f in local}
    for path in sorted(mine):
        theirs = remote.get(path)
        if theirs is None:
            added.append(mine[path])
        elif theirs.same_as(mine[path]):
            unchanged += 1
        else:
            changed.append(mine[path])
    deleted = tuple(remote[p] for p in sorted(remote) if p not in mine and p not in HUB_MANAGED)
    return Plan(repo_id, kind, head, tuple(added), tuple(changed), deleted, unchanged, private)


def crowded_folder(paths: Iterable[str]) -> tuple[str, int] | None:
    """The first folder that would hold more than :data:`~builder.domain.MAX_FILES_PER_FOLDER` entries,
    and how many."""
    entries: dict[str, set[str]] = {}
    for path in paths:
        parts = path.split("/")
        for depth in range(len(parts)):
            entries.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    return next(((f, len(n)) for f, n in sorted(entries.items()) if len(n) > MAX_FILES_PER_FOLDER), None)


# -- remote -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    head: str | None
    files: dict[str, RemoteFile]
    tags: dict[str, str]  # tag -> commit
    private: bool | None = None


def _tree(api: HfApi, repo_id: str, kind: Kind, revision: str) -> dict[str, RemoteFile]:
    """Every file at ``revision`` (huggingface_hub follows the pages of the listing)."""
    from huggingface_hub import RepoFile

    out = {}
    for item in api.list_repo_tree(repo_id, repo_type=kind, revision=revision, recursive=True):
        if isinstance(item, RepoFile):
            sha = item.lfs.sha256 if item.lfs is not None else None
            out[item.path] = RemoteFile(item.path, item.size, item.blob_id, sha)
    return out


def read_remote(api: HfApi, repo_id: str, kind: Kind) -> Remote:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=kind)
    except RepositoryNotFoundError as exc:
        if hub.classify(exc) is not None and getattr(exc.response, "status_code", 404) != 404:
            raise  # a 401 (no or bad token on a private repo) is not "no repo"
        return Remote(None, {}, {})
    head = info.sha
    if head is None:
        raise PublishError(f"the Hub gave no head commit for {repo_id}; try again later")
    refs = api.list_repo_refs(repo_id, repo_type=kind)
    tags = {t.name: t.target_commit for t in refs.tags}
    return Remote(head, _tree(api, repo_id, kind, head), tags, bool(info.private))


# -- the push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    commit: str | None  # the commit made, None when nothing changed (or a dry run)
    tag: str | None  # the tag created, None when it existed on the same content (or none asked)
    attempts: int


@dataclass
class _Progress:
    """How far a publish got, over all its attempts: what the remote holds if it stops now."""

    step: str = "reading"  # of the current attempt: reading, uploading, committing, tagging, done
    commit: str | None = None  # the commit that holds this release on main, once known
    sent_commit: bool = False  # a commit request went out (its reply may have been lost)
    tag: str | None = None
    created: bool = False  # this publish created the (empty) repo

    def state(self, repo_id: str, failure: hub.HubFailure | None = None) -> str:
        if self.commit is not None:
            held = f"{repo_id} main holds this release as commit {self.commit[:12]}"
            if self.tag and self.step != "done":
                return f"{held}, not yet tagged {self.tag}; run publish again to add the tag"
            return held
        # A refusal (4xx) or a rate limit of the commit request means it was not applied.
        refused = failure is not None and failure.status is not None and failure.status < 500
        if self.sent_commit and not (self.step == "committing" and refused):
            return (
                f"the commit's reply never came: {repo_id} holds either its previous state or this "
                "release, never a mix; run publish again to finish (it finds the commit)"
            )
        created = " (created empty by this publish)" if self.created else " is as it was"
        return f"nothing was committed: {repo_id}{created}"


def _release_notes(bundle: Bundle, plan: Plan, tag: str | None) -> str:
    lines = [*bundle.notes, "", f"changes: {plan.summary()}"]
    for sign, files in (("+", plan.added), ("~", plan.changed), ("-", plan.deleted)):
        lines += [f"{sign} {f.path}" for f in files[:50]]
        if len(files) > 50:
            lines.append(f"{sign} ... and {len(files) - 50} more")
    if tag:
        lines.append(f"tag: {tag}")
    return "\n".join(lines)


def _same_content(api: HfApi, repo_id: str, bundle: Bundle, commit: str) -> Plan:
    return make_plan(repo_id, bundle.kind, commit, bundle.files, _tree(api, repo_id, bundle.kind, commit))


def _operation(f: LocalFile) -> CommitOperationAdd:
    """An addition for huggingface_hub's preupload whose bytes are read as the gate hashed them."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.lfs import UploadInfo

    if isinstance(f.source, bytes):
        return CommitOperationAdd(f.path, f.source)  # held in memory since it was hashed
    op = CommitOperationAdd(f.path, str(f.source))  # reads 512 bytes: the sample preupload sends
    op.upload_info = UploadInfo(size=f.size, sample=op.upload_info.sample, sha256=bytes.fromhex(f.sha256))
    op.path_or_fileobj = cast(BinaryIO, hub_commit.VerifiedFile(f.source, f.path, f.size, f.sha256))
    return op


def _upload(api: HfApi, repo_id: str, kind: Kind, files: tuple[LocalFile, ...]) -> list[hub_commit.Addition]:
    """Upload the LFS files (huggingface_hub's preupload, classic LFS); the commit's additions."""
    operations = [_operation(f) for f in files]
    api.preupload_lfs_files(repo_id, operations, repo_type=kind, free_memory=False)
    ignored = [op.path_in_repo for op in operations if op._should_ignore]
    if ignored:
        raise PublishError(
            f"{repo_id}'s .gitignore ignores {', '.join(ignored[:3])}: the commit could not hold the "
            "planned files; remove those patterns from the repo's .gitignore"
        )
    return [
        hub_commit.Addition(f.path, f.size, f.sha256, f.source, op._upload_mode == "lfs")
        for f, op in zip(files, operations, strict=True)
    ]


def _publish_once(
    api: HfApi,
    bundle: Bundle,
    repo_id: str,
    tag: str | None,
    private: bool,
    say: Callable[[str], None],
    progress: _Progress,
) -> tuple[Plan, str | None, str | None]:
    progress.step, progress.tag = "reading", tag
    remote = read_remote(api, repo_id, bundle.kind)
    if private and remote.head is not None and not remote.private:
        raise PublishError(
            f"--private, but {repo_id} exists and is public: publish never changes a repo's visibility; "
            "make it private in its settings on the Hub first, or publish it public without --private; "
            f"{progress.state(repo_id)}"
        )
    if tag and tag in remote.tags:
        differs = _same_content(api, repo_id, bundle, remote.tags[tag])
        if not differs.empty:
            raise PublishError(
                f"tag {tag} of {repo_id} already names other content ({differs.summary()}); "
                f"tags are never moved: publish under a new version tag; {progress.state(repo_id)}"
            )
    visible = remote.private if remote.head is not None else private
    plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files, visible)
    for line in plan.lines():
        say(line)
    after = set(remote.files) - {f.path for f in plan.deleted} | {f.path for f in bundle.files}
    if crowded := crowded_folder(after):
        raise PublishError(
            f"{repo_id} would hold {crowded[1]} entries in folder {crowded[0] or '/'!r}, more than the Hub's "
            f"{MAX_FILES_PER_FOLDER} (https://huggingface.co/docs/hub/repositories-recommendations); "
            f"split it into subfolders; {progress.state(repo_id)}"
        )
    readme = next((f for f in (*plan.added, *plan.changed) if f.path == "README.md"), None)
    if readme is not None:  # the Hub's metadata rules, before the repo is created or a byte uploaded
        hub_commit.validate_readme(api, readme.source, bundle.kind)
    head = remote.head
    if head is None:
        api.create_repo(
            repo_id,
            repo_type=bundle.kind,
            private=private,
            exist_ok=True,
            space_sdk="gradio" if bundle.kind == "space" else None,
        )
        progress.created = True
        head = api.repo_info(repo_id, repo_type=bundle.kind).sha
        tree = _tree(api, repo_id, bundle.kind, head or "main")
        plan = make_plan(repo_id, bundle.kind, head, bundle.files, tree, private)
    commit = None
    if not plan.empty:
        progress.step = "uploading"
        additions = _upload(api, repo_id, bundle.kind, (*plan.added, *plan.changed))
        sent_before, progress.step, progress.sent_commit = progress.sent_commit, "committing", True
        title = f"Release {tag}" if tag else "Release"
        try:
            commit = hub_commit.post_commit(
                api,
                repo_id,
                bundle.kind,
                additions,
                [f.path for f in plan.deleted],
                summary=f"{title}: {plan.summary()}",
                description=_release_notes(bundle, plan, tag),
                parent_commit=head,
            )
        except hub.SourceChangedError:
            # The body was cut short before its Content-Length: a server never acts on it.
            progress.sent_commit = sent_before
            raise
        progress.commit = commit
        say(f"committed {commit[:12]} to {repo_id}: {plan.summary()}")
    else:
        progress.commit = head
        say(f"{repo_id} already holds this release (commit {(head or '')[:12]}): nothing to commit")
    made_tag = None
    if tag and tag not in remote.tags:
        target = commit or head or ""
        progress.step = "tagging"
        try:
            api.create_tag(
                repo_id, tag=tag, revision=target, repo_type=bundle.kind, tag_message="\n".join(bundle.notes)
            )
        except Exception as exc:
            failure = hub.classify(exc)
            if failure is None or failure.status != 409:
                raise
            _tag_raced(api, repo_id, bundle, tag, target, say)
        else:
            made_tag = tag
            say(f"tagged {target[:12]} as {tag}")
    progress.step = "done"
    return plan, commit, made_tag


def _tag_raced(
    api: HfApi, repo_id: str, bundle: Bundle, tag: str, target: str, say: Callable[[str], None]
) -> None:
    """Another client created ``tag`` between our commit and our tag: fine if it names this content."""
    refs = {t.name: t.target_commit for t in api.list_repo_refs(repo_id, repo_type=bundle.kind).tags}
    theirs = refs.get(tag, "")
    if theirs and _same_content(api, repo_id, bundle, theirs).empty:
        say(f"tag {tag} was created meanwhile by another client on {theirs[:12]}, with this same content")
        return None
    raise PublishError(
        f"tag {tag} was created by another client on commit {theirs[:12]} with other content while this "
        f"publish ran: {repo_id} main holds this release as commit {target[:12]}, untagged; tags are never "
        "moved: publish it under a new version tag"
    )


def _publish_give_up(repo_id: str, progress: _Progress) -> Callable[[hub.HubFailure, int], PublishError]:
    def give_up(failure: hub.HubFailure, attempt: int) -> PublishError:
        state = progress.state(repo_id, failure)
        if failure.kind == "offline":
            return offline_error(f"publishing {repo_id}", state)
        if failure.kind == "conflict":
            return PublishConflictError(
                f"{repo_id} changed while publishing ({failure.message}); nothing was forced: "
                f"run publish again to plan against the new remote; {state}"
            )
        if failure.kind == "credentials":
            return PublishError(
                f"the Hub refused the credentials for {repo_id} ({failure.message}); set HF_TOKEN or run "
                f"`hf auth login` with a write token of the repo's namespace; {state}"
            )
        if failure.kind == "refused":
            return PublishError(f"the Hub refused the publish of {repo_id} ({failure.message}); {state}")
        return PublishError(
            f"publishing {repo_id} failed after {attempt} attempt(s): {failure.message}; {state}"
        )

    return give_up


def publish(
    bundle: Bundle,
    repo_id: str,
    *,
    tag: str | None = None,
    dry_run: bool = False,
    private: bool = False,
    attempts: int = 4,
    backoff_s: float = 2.0,
    max_wait_s: float = 60.0,
    say: Callable[[str], None] = print,
    api: HfApi | None = None,
) -> Outcome:
    """Push ``bundle`` to ``repo_id`` as one commit (and a tag); see the module docstring."""
    retries = Retries(attempts, backoff_s, max_wait_s)
    retries.check()
    client, token = hub.client()
    api = api or client
    say_clean: Callable[[str], None] = lambda line: say(hub.redact(line, token))  # noqa: E731
    if dry_run:
        try:
            with hub.single_tries():
                remote = read_remote(api, repo_id, bundle.kind)
        except Exception as exc:
            failure = hub.classify(exc)
            if failure is None:
                raise
            say_clean(
                f"cannot read {repo_id} from the Hub ({failure.message}); planning against an empty repo"
            )
            remote = Remote(None, {}, {})
        if private and remote.head is not None and not remote.private:
            say_clean(f"--private, but {repo_id} exists and is public: a publish would refuse it")
        visible = remote.private if remote.head is not None else private
        plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files, visible)
        for line in plan.lines():
            say_clean(line)
        say_clean("dry run: nothing was written")
        return Outcome(plan, None, None, 0)

    progress = _Progress()
    if hub.offline():
        raise offline_error(f"publishing {repo_id}", progress.state(repo_id))
    (plan, commit, made_tag), attempt = retrying(
        lambda: _publish_once(api, bundle, repo_id, tag, private, say_clean, progress),
        retries,
        give_up=_publish_give_up(repo_id, progress),
        state=lambda failure: progress.state(repo_id, failure),
        token=token,
        say=say_clean,
    )
    return Outcome(plan, commit, made_tag, attempt)


# -- what later steps read from the Hub -------------------------------------------------------


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        return json_object(path.read_bytes(), what)
    except PublishError as exc:
        raise PublishError(f"{exc}: publish it again; nothing was published") from None


def _source_give_up(what: str) -> Callable[[hub.HubFailure, int], PublishError]:
    def give_up(failure: hub.HubFailure, attempt: int) -> PublishError:
        if failure.kind == "offline":
            return offline_error(f"reading {what}", "nothing was published")
        if failure.kind == "transient":
            return PublishError(
                f"cannot read {what} from the Hub after {attempt} attempt(s) ({failure.message}): "
                "check the network and HF_ENDPOINT, and run again; nothing was published"
            )
        return PublishError(
            f"cannot read {what} from the Hub ({failure.message}): publish them first "
            "(or check the ids and the token); nothing was published"
        )

    return give_up


def _read_sources(
    what: str,
    read: Callable[[], T],
    retries: Retries,
    *,
    dry_run: bool,
    say: Callable[[str], None],
) -> T | None:
    """``read()`` with retries; in a dry run a Hub that cannot be reached is said, and None returned."""
    token = hub.token()
    if dry_run:
        try:
            with hub.single_tries():
                return read()
        except PublishError:
            raise
        except Exception as exc:
            failure = hub.classify(exc)
            if failure is None:
                raise
            say(
                hub.redact(
                    f"cannot read {what} from the Hub ({failure.message}); not checked in a dry run", token
                )
            )
            return None
    if hub.offline():
        raise offline_error(f"reading {what}", "nothing was published")
    result, _ = retrying(
        read,
        retries,
        give_up=_source_give_up(what),
        state=lambda failure: "nothing was published",
        token=token,
        say=say,
    )
    return result


def _metadata_digest(api: HfApi, dataset_id: str, revision: str, cache: str) -> str:
    path = api.hf_hub_download(
        dataset_id, "data/train/metadata.csv", repo_type="dataset", revision=revision, cache_dir=cache
    )
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_model_sources(
    base_model: str,
    release: Mapping[str, Any],
    dataset_id: str,
    retries: Retries | None = None,
    *,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """What a model card claims about its data, checked on the Hub before publishing it.

    The base model must be a model anyone can read on the Hub (users load it by that id),
    and ``dataset_id`` must hold the train split the adapter was trained on: its
    ``data/train/metadata.csv`` (at the revision the training summary names, when it
    trained on that Hub id) has the summary's SHA-256.
    """
    revision = str(release.get("revision") or "main") if release.get("hub_id") == dataset_id else "main"

    def read() -> tuple[bool, str]:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            hub.anonymous().model_info(base_model)
            public = True
        except RepositoryNotFoundError as exc:
            if getattr(exc.response, "status_code", 404) not in (401, 404):
                raise
            public = False
        api, _ = hub.client()
        with tempfile.TemporaryDirectory(prefix="cropmark-model-check-") as cache:
            return public, _metadata_digest(api, dataset_id, revision, cache)

    at = f" at the revision it was trained on, {revision[:12]}," if revision != "main" else ""
    what = f"the base model {base_model} and dataset {dataset_id}{at}"
    found = _read_sources(what, read, retries or Retries(), dry_run=dry_run, say=say)
    if found is None:
        return
    public, digest = found
    if not public:
        raise PublishError(
            f"the adapter's base model {base_model} is not a public model on the Hub: users could not load "
            "it and the card would link to nothing; train on a Hub id such as LiquidAI/LFM2.5-VL-450M; "
            "nothing was published"
        )
    trained = str(release["train_metadata_sha256"])
    if digest != trained:
        raise PublishError(
            f"{dataset_id} at {revision} does not hold the train split the adapter was trained on (its "
            f"data/train/metadata.csv has SHA-256 {digest[:12]}, the training summary {trained[:12]}): "
            "the card would name data the model did not see; publish that release, or pass the --dataset-id "
            "it was trained on; nothing was published"
        )


@dataclass(frozen=True)
class SpaceSources:
    """What a Space will serve, as read from the Hub: its base model and the pinned revisions."""

    base_model: str
    adapter_revision: str
    dataset_revision: str
    private: tuple[str, ...]  # the sources a reader without a token cannot read
    tiles: frozenset[str] | None  # SHA-256 of the dataset's published tiles; None: not read (dry run)


def check_space_sources(
    model_id: str,
    dataset_id: str,
    baseline: Mapping[str, Any],
    base_model: str | None,
    retries: Retries | None = None,
    *,
    private_sources: bool = False,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> SpaceSources:
    """Read what a Space will serve from the Hub before publishing it.

    The model and the dataset must be on the Hub; their current commits are the revisions
    the Space is pinned to. The model's ``adapter_config.json`` names the base model (which
    ``base_model``, when given, must equal); the baseline must have been fitted on the
    dataset's ``train`` split as published (same ``data/train/metadata.csv``). A Space has
    no token unless its owner adds one as a secret, so both must be readable without a
    token (public, not gated), unless ``private_sources`` says the Space will get one.
    A dry run that cannot reach the Hub says so and goes on with ``base_model`` (or the
    card's base) pinned to ``main``.
    """
    what = f"the Space's model {model_id} and dataset {dataset_id}"
    # A fresh cache: the check reads what the Hub holds now, never a copy cached earlier.
    with tempfile.TemporaryDirectory(prefix="cropmark-space-check-") as cache:

        def read() -> tuple[str, str, dict[str, Any], str, list[str], frozenset[str]]:
            api, _ = hub.client()
            adapter_rev = api.model_info(model_id).sha or "main"
            dataset_rev = api.dataset_info(dataset_id).sha or "main"
            config = api.hf_hub_download(
                model_id, "adapter_config.json", revision=adapter_rev, cache_dir=cache
            )
            digest = _metadata_digest(api, dataset_id, dataset_rev, cache)
            closed = [
                repo
                for repo, kind, rev, name in (
                    (model_id, "model", adapter_rev, "adapter_config.json"),
                    (dataset_id, "dataset", dataset_rev, "data/eval/metadata.csv"),
                )
                if not _anyone_reads(repo, kind, rev, name, cache)
            ]
            adapter = _read_json_object(Path(config), f"{model_id}'s adapter_config.json on the Hub")
            tiles = frozenset(
                f.sha256 for f in _tree(api, dataset_id, "dataset", dataset_rev).values() if f.sha256
            )
            return adapter_rev, dataset_rev, adapter, digest, closed, tiles

        found = _read_sources(what, read, retries or Retries(), dry_run=dry_run, say=say)
    if found is None:
        return SpaceSources(base_model or BASE_MODEL, "main", "main", (), None)
    adapter_rev, dataset_rev, config, digest, closed, tiles = found
    published_base = config.get("base_model_name_or_path")
    if (problem := hub_id_problem(published_base, "base model")) is not None:
        raise PublishError(
            f"{model_id}'s adapter_config.json on the Hub names no usable base model ({problem}); "
            "publish the model again with scripts/publish.py model; nothing was published"
        )
    assert isinstance(published_base, str)
    if base_model is not None and base_model != published_base:
        raise PublishError(
            f"--base-model {base_model} but {model_id} is an adapter of {published_base!r}; "
            "the Space would load an adapter that does not fit; nothing was published"
        )
    if digest != baseline["train_metadata_sha256"]:
        raise PublishError(
            f"the baseline was not fitted on {dataset_id} as published (its train metadata.csv differs): "
            f"fit it with scripts/train_baseline.py {dataset_id}; nothing was published"
        )
    if closed and not private_sources:
        raise PublishError(
            f"{' and '.join(closed)} cannot be read without a token (private or gated), and a Space has no "
            "token: it would serve the offline test model. Make them public, or pass --private-sources and "
            f"add a read token as the Space secret HF_TOKEN ({SPACE_SECRETS}); nothing was published"
        )
    if closed:
        say(
            f"{' and '.join(closed)} need a token: add a read token as the secret HF_TOKEN in the Space's "
            f"settings ({SPACE_SECRETS}), or the Space serves the offline test model"
        )
    return SpaceSources(published_base, adapter_rev, dataset_rev, tuple(closed), tiles)


def _anyone_reads(repo_id: str, kind: str, revision: str, filename: str, cache: str) -> bool:
    """Whether a reader without a token (a Space) can download ``filename`` of ``repo_id``."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        hub.anonymous().hf_hub_download(
            repo_id, filename, repo_type=kind, revision=revision, cache_dir=f"{cache}/anonymous"
        )
    except (GatedRepoError, RepositoryNotFoundError):
        return False
    except Exception as exc:
        failure = hub.classify(exc)
        if failure is None or failure.kind not in ("credentials", "refused"):
            raise
        return False
    return True
