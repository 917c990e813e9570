"""Release pushes of the dataset, the model (LoRA adapter) and the Space to the Hub.

One publish is: **gate** (:mod:`builder.bundles`) → **plan** (local files against the
remote tree: SHA-256 for LFS files, git blob ids for regular ones) → **one commit**
that adds, changes and deletes exactly what the plan says, with ``parent_commit`` set
so a remote that moved under us is a conflict, never an overwrite → **one tag** on
that commit. A tag is never moved, and a dataset's tag is ``v<release version>``
unless the caller explicitly allows another name.

Uploads use classic LFS, streamed from disk (:mod:`builder.hub` says why).

Failures: transient ones (HTTP 408/429/5xx, HTML error pages, dropped connections)
are retried with backoff, or after the wait the Hub's ``Retry-After`` asks for, up to
``max_wait_s`` (a longer wait stops the publish and says when to retry). Every retry
plans again from the remote, so a commit whose reply was lost is found on the remote
instead of being made twice; a run stopped between its commit and its tag is finished
by running it again. Every other failure is a :class:`~builder.errors.PublishError`
whose one line gives the Hub's own message and what the remote holds now. The token
travels only in the Authorization header and is scrubbed from every message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from builder import hub
from builder.bundles import Bundle, Kind, LocalFile
from builder.errors import PublishConflictError, PublishError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

# Files the Hub writes into a new repo; a release does not own them and never deletes them.
HUB_MANAGED = frozenset({".gitattributes"})
SHOWN_PER_KIND = 20
# The Hub's limit of entries (files and folders) per folder:
# https://huggingface.co/docs/hub/repositories-recommendations
FILES_PER_FOLDER = 10_000
# git check-ref-format (https://git-scm.com/docs/git-check-ref-format) for refs/tags/<name>.
_BAD_TAG = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|[/.]$|\.lock(/|$)|/\.")


def check_tag(tag: str, version: str | None, other_tag_ok: bool) -> None:
    """A tag git accepts and, for a versioned release, ``v<version>`` unless explicitly allowed."""
    if not tag or tag == "@" or _BAD_TAG.search(tag):
        raise PublishError(
            f"tag {tag!r} is not a valid git tag name (no spaces, '..', '~^:?*[\\', '@{{', "
            "leading '-' or '.', trailing '/', '.' or '.lock'); use e.g. v1.0.0"
        )
    if version is not None and tag != f"v{version}" and not other_tag_ok:
        raise PublishError(
            f"tag {tag} does not name this release's version {version} (expected v{version}); "
            f"tag it v{version}, or pass --other-tag to publish {version} under {tag}"
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
        where = f"remote head {self.head[:12]}" if self.head else "new repo"
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
    repo_id: str, kind: Kind, head: str | None, local: Iterable[LocalFile], remote: dict[str, RemoteFile]
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
    return Plan(repo_id, kind, head, tuple(added), tuple(changed), deleted, unchanged)


def crowded_folder(paths: Iterable[str]) -> tuple[str, int] | None:
    """The first folder that would hold more than :data:`FILES_PER_FOLDER` entries, and how many."""
    entries: dict[str, set[str]] = {}
    for path in paths:
        parts = path.split("/")
        for depth in range(len(parts)):
            entries.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    return next(((f, len(n)) for f, n in sorted(entries.items()) if len(n) > FILES_PER_FOLDER), None)


# -- remote -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    head: str | None
    files: dict[str, RemoteFile]
    tags: dict[str, str]  # tag -> commit


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
    return Remote(head, _tree(api, repo_id, kind, head), {t.name: t.target_commit for t in refs.tags})


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


def _operations(plan: Plan) -> tuple[list[Any], list[Any]]:
    """(additions, deletions): additions read their file from disk when it is sent, never all at once."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    additions = []
    for f in (*plan.added, *plan.changed):
        op = CommitOperationAdd(f.path, f.source)
        op.upload_info.sha256 = bytes.fromhex(f.sha256)  # hashed once already, as a stream
        additions.append(op)
    return additions, [CommitOperationDelete(f.path) for f in plan.deleted]


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
    if tag and tag in remote.tags:
        differs = _same_content(api, repo_id, bundle, remote.tags[tag])
        if not differs.empty:
            raise PublishError(
                f"tag {tag} of {repo_id} already names other content ({differs.summary()}); "
                f"tags are never moved: publish under a new version tag; {progress.state(repo_id)}"
            )
    plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files)
    for line in plan.lines():
        say(line)
    after = set(remote.files) - {f.path for f in plan.deleted} | {f.path for f in bundle.files}
    if crowded := crowded_folder(after):
        raise PublishError(
            f"{repo_id} would hold {crowded[1]} entries in folder {crowded[0] or '/'!r}, more than the Hub's "
            f"{FILES_PER_FOLDER} (https://huggingface.co/docs/hub/repositories-recommendations); "
            f"split it into subfolders; {progress.state(repo_id)}"
        )
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
        plan = make_plan(
            repo_id, bundle.kind, head, bundle.files, _tree(api, repo_id, bundle.kind, head or "main")
        )
    commit = None
    if not plan.empty:
        readme = next((f for f in (*plan.added, *plan.changed) if f.path == "README.md"), None)
        if readme is not None:  # the Hub's metadata rules, before any byte is uploaded
            hub.validate_readme(api, readme.source, bundle.kind)
        progress.step = "uploading"
        additions, deletions = _operations(plan)
        api.preupload_lfs_files(repo_id, additions, repo_type=bundle.kind, free_memory=False)
        progress.step, progress.sent_commit = "committing", True
        title = f"Release {tag}" if tag else "Release"
        info = api.create_commit(
            repo_id,
            [*additions, *deletions],
            repo_type=bundle.kind,
            commit_message=f"{title}: {plan.summary()}",
            commit_description=_release_notes(bundle, plan, tag),
            parent_commit=head,
        )
        commit = info.oid
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
    if attempts < 1 or backoff_s < 0 or max_wait_s < 0:
        raise PublishError(
            f"attempts {attempts}, backoff {backoff_s} s, max wait {max_wait_s} s: "
            "give at least 1 attempt and waits of 0 s or more"
        )
    client, token = hub.client()
    api = api or client
    say_clean: Callable[[str], None] = lambda line: say(hub.redact(line, token))  # noqa: E731
    if dry_run:
        try:
            remote = read_remote(api, repo_id, bundle.kind)
        except Exception as exc:
            failure = hub.classify(exc)
            if failure is None:
                raise
            say_clean(
                f"cannot read {repo_id} from the Hub ({failure.message}); planning against an empty repo"
            )
            remote = Remote(None, {}, {})
        plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files)
        for line in plan.lines():
            say_clean(line)
        say_clean("dry run: nothing was written")
        return Outcome(plan, None, None, 0)

    progress = _Progress()
    for attempt in range(1, attempts + 1):
        try:
            with hub.classic_lfs():
                plan, commit, made_tag = _publish_once(
                    api, bundle, repo_id, tag, private, say_clean, progress
                )
            return Outcome(plan, commit, made_tag, attempt)
        except PublishError as exc:
            if hub.redact(str(exc), token) != str(exc):
                raise type(exc)(hub.redact(str(exc), token)) from None
            raise
        except Exception as exc:
            failure = hub.classify(exc)
            if failure is None:
                raise  # not the Hub's doing: a bug, shown with its traceback
            _give_up_or_wait(
                failure, repo_id, attempt, attempts, backoff_s, max_wait_s, progress, token, say_clean
            )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _give_up_or_wait(
    failure: hub.HubFailure,
    repo_id: str,
    attempt: int,
    attempts: int,
    backoff_s: float,
    max_wait_s: float,
    progress: _Progress,
    token: str | None,
    say: Callable[[str], None],
) -> None:
    """Raise the one-line error for ``failure``, or sleep before the next attempt."""
    message, state = hub.redact(failure.message, token), progress.state(repo_id, failure)
    if failure.kind == "conflict":
        raise PublishConflictError(
            f"{repo_id} changed while publishing ({message}); nothing was forced: "
            f"run publish again to plan against the new remote; {state}"
        )
    if failure.kind == "credentials":
        raise PublishError(
            f"the Hub refused the credentials for {repo_id} ({message}); set HF_TOKEN or run "
            f"`hf auth login` with a write token of the repo's namespace; {state}"
        )
    if failure.kind == "refused":
        raise PublishError(f"the Hub refused the publish of {repo_id} ({message}); {state}")
    if attempt == attempts:
        raise PublishError(f"publishing {repo_id} failed after {attempt} attempt(s): {message}; {state}")
    wait = backoff_s * 2 ** (attempt - 1)
    if failure.retry_after is not None:
        if failure.retry_after > max_wait_s:
            raise PublishError(
                f"the Hub asks to wait {failure.retry_after:.0f} s before retrying ({message}), more than "
                f"--max-wait {max_wait_s:g} s: run publish again in {failure.retry_after:.0f} s; {state}"
            )
        wait = failure.retry_after
        say(f"attempt {attempt} failed ({message}); the Hub asks to wait {wait:g} s (Retry-After): waiting")
    else:
        say(f"attempt {attempt} failed ({message}); retrying in {wait:g} s")
    time.sleep(wait)


def check_space_sources(
    model_id: str,
    dataset_id: str,
    baseline: dict[str, Any],
    base_model: str | None,
    *,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> str:
    """Read what a Space will serve from the Hub before publishing it; return its base model.

    The model must be on the Hub (its ``adapter_config.json`` names the base model, which
    ``base_model``, when given, must equal), and the baseline must have been fitted on the
    dataset's ``train`` split as published (same ``data/train/metadata.csv``). A dry run
    that cannot reach the Hub says so and goes on with ``base_model`` (or the card's base).
    """
    import hashlib
    import json
    import tempfile
    from pathlib import Path

    from builder.cards import BASE_MODEL

    api, token = hub.client()
    try:
        # A fresh cache: the check reads what the Hub holds now, never a copy cached earlier.
        with tempfile.TemporaryDirectory(prefix="cropmark-space-check-") as cache:
            adapter = json.loads(
                Path(api.hf_hub_download(model_id, "adapter_config.json", cache_dir=cache)).read_text("utf-8")
            )
            metadata = Path(
                api.hf_hub_download(
                    dataset_id, "data/train/metadata.csv", repo_type="dataset", cache_dir=cache
                )
            ).read_bytes()
    except Exception as exc:
        failure = hub.classify(exc)
        if failure is None:
            raise
        message = hub.redact(failure.message, token)
        if dry_run:
            say(f"cannot read {model_id} and {dataset_id} from the Hub ({message}); not checked in a dry run")
            return base_model or BASE_MODEL
        advice = (
            "check the network and HF_ENDPOINT, and run again"
            if failure.kind == "transient"
            else "publish them first (or check the ids and the token)"
        )
        raise PublishError(
            f"cannot read the Space's model {model_id} and dataset {dataset_id} from the Hub ({message}): "
            f"{advice}; nothing was published"
        ) from None
    published_base = adapter.get("base_model_name_or_path")
    if base_model is not None and base_model != published_base:
        raise PublishError(
            f"--base-model {base_model} but {model_id} is an adapter of {published_base!r}; "
            "the Space would load an adapter that does not fit; nothing was published"
        )
    digest = hashlib.sha256(metadata).hexdigest()
    if digest != baseline["train_metadata_sha256"]:
        raise PublishError(
            f"the baseline was not fitted on {dataset_id} as published (its train metadata.csv differs): "
            f"fit it with scripts/train_baseline.py {dataset_id}; nothing was published"
        )
    return str(published_base)
