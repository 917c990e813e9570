"""Every failure a user can meet while publishing: one line and exit 2, or a retry that says so.

All against the local Hub server (tests/hub/server.py) through the real huggingface_hub client.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from builder.cli import main
from builder.domain import MAX_FILES_PER_FOLDER as FILES_PER_FOLDER
from builder.errors import PublishError
from builder.hub.bundles import Bundle, LocalFile
from builder.hub.publish import publish
from builder.release.build import BuildConfig, BuildResult, build
from tests.hub import ORG, TOKEN
from tests.hub.server import Account, Fault, HubServer

ROOT = Path(__file__).resolve().parent.parent
REPO = f"{ORG}/cropmark-disambiguator-s2"
S3_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


@pytest.fixture
def released(small_corpus: Path, tmp_path: Path) -> BuildResult:
    return build(BuildConfig(small_corpus, tmp_path / "build", "1.0.0", repo_id=REPO))


def _cli(*args: str) -> int:
    return main(["publish", *args, "--backoff", "0.01"])


def _one_line_error(capfd: pytest.CaptureFixture[str]) -> str:
    """The error line of the run: exactly one line on stderr apart from progress bars."""
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and TOKEN not in err
    return lines[0]


def _remote(hub: HubServer, repo: str = REPO, kind: str = "dataset") -> dict[str, bytes]:
    files = hub.files(kind, repo)
    files.pop(".gitattributes")
    return files


def _local(release: Path) -> dict[str, bytes]:
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in release.rglob("*") if p.is_file()}


def _a_tile(release: Path) -> tuple[str, str]:
    """(path in the repo, SHA-256) of one tile."""
    tile = sorted((release / "data" / "train").glob("*.jpg"))[0]
    return tile.relative_to(release).as_posix(), hashlib.sha256(tile.read_bytes()).hexdigest()


# -- the protocol users get by default ------------------------------------------------------------


def test_with_xet_at_its_default_publish_still_uploads_with_classic_lfs(
    hub: HubServer, released: BuildResult, tmp_path: Path
) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "home")}
    env.pop("HF_HUB_DISABLE_XET")  # as a user's shell has it: hf_xet installed, Xet on
    probe = "from huggingface_hub.utils._runtime import is_xet_available; print(is_xet_available())"
    default = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert default.stdout.strip() == "True"  # the client's default path is Xet
    # Without publish's choice, that default fails against a server without Xet ...
    upload = f"from huggingface_hub import HfApi; HfApi().upload_file(path_or_fileobj=b'x'*100, path_in_repo='a.bin', repo_id='{ORG}/xet', repo_type='dataset')"
    create = f"from huggingface_hub import HfApi; HfApi().create_repo('{ORG}/xet', repo_type='dataset')"
    subprocess.run([sys.executable, "-c", create], env=env, check=True, capture_output=True)
    raw = subprocess.run([sys.executable, "-c", upload], env=env, capture_output=True, text=True, check=False)
    assert raw.returncode != 0 and hub.stats.xet_requests > 0
    hub.stats.reset()
    # ... and publish, in the same environment, uploads with classic LFS.
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "publish.py"),
            "dataset",
            str(released.release),
            "--repo-id",
            REPO,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert hub.stats.xet_requests == 0
    assert any("/info/lfs/objects/batch" in r[1] for r in hub.stats.requests)
    assert _remote(hub) == _local(released.release)


# -- upload failures ------------------------------------------------------------------------------


def test_a_refused_lfs_upload_is_one_line_naming_the_file_and_the_remote_state(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    path, oid = _a_tile(released.release)
    hub.inject(Fault("PUT", f"/lfs/upload/{oid}", status=403, times=99, body=S3_DENIED))
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 2
    line = _one_line_error(capfd)
    assert f"Error while uploading '{path}' to the Hub: HTTP 403:" in line
    assert "<Code>AccessDenied</Code>" in line
    assert line.endswith(f"nothing was committed: {REPO} (created empty by this publish)")
    assert hub.stats.commits == 0 and _remote(hub) == {}


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_persistent_5xx_on_an_upload_is_tried_attempts_times_in_all_then_one_line(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], attempts: int
) -> None:
    """huggingface_hub would retry the PUT 5 times itself (about 23 s) on each attempt; its own
    retries are off while publishing, so --attempts counts every try."""
    path, oid = _a_tile(released.release)
    hub.inject(Fault("PUT", f"/lfs/upload/{oid}", status=503, times=99))
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--attempts", str(attempts)) == 2
    line = _one_line_error(capfd)
    assert (
        f"failed after {attempts} attempt(s): Error while uploading '{path}' to the Hub: HTTP 503: " in line
    )
    assert "an HTML error page (503 Service Unavailable)" in line and "nothing was committed" in line
    assert [r[2] for r in hub.stats.requests if oid in r[1] and r[0] == "PUT"] == [503] * attempts


# -- refusals with the Hub's own messages ---------------------------------------------------------


def test_a_readme_the_hub_refuses_is_refused_with_its_errors_before_any_upload(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = "---\nlicense: lfm1.0\npipeline_tag: image-to-caption\n---\n# A model\n"
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(os.urandom(2 << 20))
    files = (LocalFile.from_bytes("README.md", readme.encode()), LocalFile.from_path(weights.name, weights))
    with pytest.raises(PublishError) as refused:
        publish(Bundle("model", files, ()), f"{ORG}/m", say=lambda line: None, backoff_s=0)
    message = str(refused.value)
    assert message.startswith(f"the Hub refused the publish of {ORG}/m (HTTP 400: Invalid metadata; ")
    assert "\"license\" must be one of the Hub's licence identifiers, got 'lfm1.0'" in message
    assert "\"pipeline_tag\" must be one of the Hub's task categories, got 'image-to-caption'" in message
    assert message.endswith("nothing was committed: cropmark-org/m is as it was")
    assert hub.stats.uploaded_bytes == 0 and hub.stats.commits == 0
    assert not hub.state.repos  # validated before the repo was created: no empty repo is left


def test_a_validate_yaml_refusal_of_the_hub_is_one_line_with_its_list(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    errors = {
        "errors": [{"message": '"configs[0].data_files" is not allowed'}, {"message": "second problem"}]
    }
    hub.inject(Fault("POST", r"/api/validate-yaml$", status=400, body=json.dumps(errors).encode()))
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 2
    line = _one_line_error(capfd)
    assert '"configs[0].data_files" is not allowed; second problem' in line
    assert hub.stats.uploaded_bytes == 0


# -- HTML error pages and rate limits -------------------------------------------------------------


@pytest.mark.parametrize("path", [r"/commit/", r"/api/validate-yaml$", r"/api/repos/create$", r"/tag/"])
def test_an_html_502_is_retried(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], path: str
) -> None:
    hub.inject(Fault("POST", path, status=502))
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    out = capfd.readouterr().out
    assert "attempt 1 failed (HTTP 502: an HTML error page (502 Bad Gateway)); retrying in 0.01 s" in out
    assert _remote(hub) == _local(released.release) and hub.stats.commits == 1


def test_persistent_html_5xx_ends_in_one_line_that_says_the_remote_may_hold_the_commit(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=503, times=2))
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--attempts", "2") == 2
    line = _one_line_error(capfd)
    assert "failed after 2 attempt(s): HTTP 503: an HTML error page (503 Service Unavailable);" in line
    assert "the commit's reply never came" in line and "run publish again to finish" in line
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0


def test_a_lost_commit_reply_is_remembered_by_later_attempts(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=502, lost_reply=True))  # committed, reply lost
    hub.inject(Fault("GET", r"/refs$", status=500))  # the second attempt fails while reading
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--attempts", "2") == 2
    line = _one_line_error(capfd)
    assert "failed after 2 attempt(s): HTTP 500: " in line and "the commit's reply never came" in line
    assert hub.stats.commits == 1 and hub.repo("dataset", REPO).tags == {}
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    head = hub.repo("dataset", REPO).branches["main"]
    assert "nothing to commit" in capfd.readouterr().out and hub.stats.commits == 1
    assert hub.repo("dataset", REPO).tags == {"v1.0.0": head}


def test_429_waits_as_long_as_retry_after_says(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=429, retry_after=1))
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    out = capfd.readouterr().out
    assert (
        "attempt 1 failed (HTTP 429: injected fault 429); the Hub asks to wait 1 s (Retry-After): waiting"
        in out
    )
    assert hub.stats.commits == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault("POST", r"/commit/", status=429, retry_after=3600),
        # requests huggingface_hub used to retry itself, sleeping Retry-After + 1 s uncapped
        Fault("GET", r"/tree/", status=429, retry_after=3600),
        Fault("PUT", r"/lfs/upload/", status=429, retry_after=3600),
    ],
    ids=["commit", "tree listing", "lfs upload"],
)
def test_a_retry_after_beyond_max_wait_stops_and_says_when_to_retry(
    hub: HubServer,
    released: BuildResult,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault,
) -> None:
    import time

    def no_long_sleep(seconds: float) -> None:
        assert seconds <= 60, f"slept {seconds} s, beyond --max-wait 60"

    monkeypatch.setattr(time, "sleep", no_long_sleep)
    hub.inject(fault)
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--max-wait", "60") == 2
    line = _one_line_error(capfd)
    assert "the Hub asks to wait 3600 s before retrying (" in line
    assert "injected fault 429), more than --max-wait 60 s" in line
    assert "run publish again in 3600 s; nothing was committed" in line


# -- options and entry points ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attempts", "0"], "argument --attempts: 0 is below 1"),
        (["--attempts", "two"], "argument --attempts: 'two' is not a whole number"),
        (["--backoff", "-1"], "argument --backoff: -1 seconds: give 0 to 86400 (a day)"),
        (["--backoff", "1e308"], "argument --backoff: 1e308 seconds: give 0 to 86400 (a day)"),
        (["--max-wait", "nan"], "argument --max-wait: nan seconds: give 0 to 86400 (a day)"),
        (["--max-wait", "inf"], "argument --max-wait: inf seconds: give 0 to 86400 (a day)"),
        (["--tag", ""], "tag '' is not a valid git tag name"),
        (["--tag", "main", "--other-tag"], "tag 'main' would be read as a branch, HEAD"),
        (["--tag", "HEAD", "--other-tag"], "tag 'HEAD' would be read as a branch, HEAD"),
        (["--tag", "0123456789abcdef0123456789abcdef01234567", "--other-tag"], "or a commit id on the Hub"),
        (["--tag", "refs/pr/1", "--other-tag"], "a pull request"),
        (["--repo-id", f"{ORG}/lora-"], f"argument --repo-id: '{ORG}/lora-' is not a Hub id ORG/NAME"),
        (["--repo-id", f"{ORG}/a--b"], "is not a Hub id ORG/NAME"),
        (["--repo-id", f"{ORG}/a..b"], "is not a Hub id ORG/NAME"),
        (["--repo-id", f"{ORG}/" + "x" * 97], "is not a Hub id ORG/NAME"),
        (["--tag", "v1..0"], "tag 'v1..0' is not a valid git tag name"),
        (["--tag", "v 1.0.0"], "tag 'v 1.0.0' is not a valid git tag name"),
        (["--tag=-v1"], "tag '-v1' is not a valid git tag name"),
        (["--tag", "v1.0.1"], "tag v1.0.1 does not name this release's version 1.0.0 (expected v1.0.0)"),
        (["--tag", "v1.0.0", "--no-tag"], "--tag and --no-tag contradict each other"),
        (["--repo-id", "bad id"], "argument --repo-id: 'bad id' is not a Hub id ORG/NAME"),
    ],
)
def test_bad_option_values_are_one_line_before_any_request(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["publish", "dataset", str(released.release), "--repo-id", REPO, *args]) == 2
    assert message in _one_line_error(capfd)
    assert hub.stats.requests == []


def test_another_tag_than_the_version_needs_other_tag(hub: HubServer, released: BuildResult) -> None:
    assert (
        _cli("dataset", str(released.release), "--repo-id", REPO, "--tag", "release-2026", "--other-tag") == 0
    )
    assert set(hub.repo("dataset", REPO).tags) == {"release-2026"}


@pytest.mark.parametrize(
    "argv",
    [
        ["scripts/publish.py", "dataset", "{missing}", "--repo-id", REPO, "--debug"],
        ["scripts/publish.py", "--debug", "dataset", "{missing}", "--repo-id", REPO],
        ["scripts/publish.py", "dataset", "--debug", "{missing}", "--repo-id", REPO],
        ["-m", "builder.cli", "publish", "dataset", "{missing}", "--repo-id", REPO, "--debug"],
        ["scripts/evaluate.py", "{missing}", "--out", "{missing}", "--baseline", "x.json", "--debug"],
        ["scripts/train_baseline.py", "{missing}", "--debug", "--out", "{missing}"],
    ],
)
def test_debug_works_anywhere_on_every_entry_point(tmp_path: Path, argv: list[str]) -> None:
    missing = str(tmp_path / "missing")
    argv = [missing if a == "{missing}" else a for a in argv]
    argv = [str(ROOT / a) if a.startswith("scripts/") else a for a in argv]
    without = [a for a in argv if a != "--debug"]
    plain = subprocess.run([sys.executable, *without], cwd=ROOT, capture_output=True, text=True, check=False)
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: ")
    debug = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


# -- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "HTTP 401: You must be authenticated to create a repo"),
        ("hf_" + "UnknownTokenOfNobody0123456789", "HTTP 401: Invalid credentials in Authorization header"),
        (
            "hf_" + "OtherUsersToken0123456789abcd",
            "HTTP 403: You don't have the rights to create a dataset under the namespace 'cropmark-org'",
        ),
        ("hf_" + "ReadOnlyToken0123456789abcdef", "HTTP 403: Your token has read access only"),
    ],
)
def test_a_token_the_hub_refuses_is_one_line(
    hub: HubServer,
    released: BuildResult,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    message: str,
) -> None:
    hub.state.accounts["hf_" + "OtherUsersToken0123456789abcd"] = Account("someone-else")
    hub.state.accounts["hf_" + "ReadOnlyToken0123456789abcdef"] = Account("tester", (ORG,), write=False)
    monkeypatch.setenv("HF_TOKEN", token)
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 2
    line = _one_line_error(capfd)
    assert line.startswith(f"error: the Hub refused the credentials for {REPO} (")
    assert message in line and "write token of the repo's namespace" in line
    assert not hub.state.repos and (not token or token[3:] not in line)


# -- tags -----------------------------------------------------------------------------------------


def test_a_tag_taken_meanwhile_on_other_content_leaves_the_commit_untagged_and_says_so(
    hub: HubServer,
    small_corpus: Path,
    released: BuildResult,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--no-tag") == 0
    first = hub.repo("dataset", REPO).branches["main"]
    second = build(BuildConfig(small_corpus, tmp_path / "b2", "1.0.1", repo_id=REPO)).release
    hub.inject(Fault("POST", r"/tag/", before=lambda: hub.tag("dataset", REPO, "v1.0.1", first)))
    assert _cli("dataset", str(second), "--repo-id", REPO) == 2
    head = hub.repo("dataset", REPO).branches["main"]
    line = _one_line_error(capfd)
    assert f"tag v1.0.1 was created by another client on commit {first[:12]} with other content" in line
    assert f"{REPO} main holds this release as commit {head[:12]}, untagged" in line
    assert "tags are never moved" in line
    assert hub.repo("dataset", REPO).tags == {"v1.0.1": first} and _remote(hub) == _local(second)


def test_a_tag_taken_meanwhile_on_the_same_content_is_fine(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/tag/", before=lambda: hub.tag("dataset", REPO, "v1.0.0")))
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    assert "tag v1.0.0 was created meanwhile by another client" in capfd.readouterr().out
    repo = hub.repo("dataset", REPO)
    assert repo.tags == {"v1.0.0": repo.branches["main"]}


def test_a_run_stopped_between_commit_and_tag_is_finished_by_running_it_again(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/tag/", drop=True))
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--attempts", "1") == 2
    head = hub.repo("dataset", REPO).branches["main"]
    line = _one_line_error(capfd)
    assert f"{REPO} main holds this release as commit {head[:12]}, not yet tagged v1.0.0" in line
    assert "run publish again to add the tag" in line
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    out = capfd.readouterr().out
    assert f"already holds this release (commit {head[:12]}): nothing to commit" in out
    assert f"tagged {head[:12]} as v1.0.0" in out
    assert hub.stats.commits == 1 and hub.repo("dataset", REPO).tags == {"v1.0.0": head}


# -- the Hub's limits -----------------------------------------------------------------------------


def test_a_paginated_tree_is_read_to_its_last_page(hub: HubServer, released: BuildResult) -> None:
    hub.state.page_size = 7
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    hub.stats.reset()
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 0
    pages = [r for r in hub.stats.requests if "/tree/" in r[1]]
    assert len(pages) >= len(_local(released.release)) // 7 and any("cursor=" in r[1] for r in pages)
    assert hub.stats.commits == 0 and hub.stats.uploaded_bytes == 0  # every remote file was seen


def test_more_than_10000_entries_in_a_folder_is_refused_before_any_write(hub: HubServer) -> None:
    files = tuple(LocalFile.from_bytes(f"data/{i:05d}.txt", b"%d\n" % i) for i in range(FILES_PER_FOLDER + 1))
    with pytest.raises(
        PublishError, match=r"would hold 10001 entries in folder 'data', more than the Hub's 10000"
    ):
        publish(Bundle("dataset", files, ()), REPO, say=lambda line: None)
    assert not hub.state.repos


def test_files_are_streamed_from_disk(hub: HubServer, tmp_path: Path) -> None:
    """Python's peak allocation while publishing an 80 MiB file stays far below its size."""
    big = tmp_path / "shard.parquet"
    with big.open("wb") as out:
        for _ in range(80):
            out.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        bundle = Bundle("dataset", (LocalFile.from_path(big.name, big),), ())
        publish(bundle, REPO, say=lambda line: None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert hub.files("dataset", REPO)[big.name] == big.read_bytes()
    assert any("/lfs/part/" in r[1] for r in hub.stats.requests)  # the multipart transfer
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


# -- visibility, races, interruptions, offline ------------------------------------------------------


def test_private_on_an_existing_public_repo_is_refused_and_nothing_changes(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.add_repo("dataset", REPO, {"NOTES.md": b"an earlier public release\n"})
    before = hub.repo("dataset", REPO).branches["main"]
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--private") == 2
    line = _one_line_error(capfd)
    assert f"--private, but {REPO} exists and is public" in line and "never changes" in line
    repo = hub.repo("dataset", REPO)
    assert repo.private is False and repo.branches["main"] == before and hub.stats.uploaded_bytes == 0
    assert _cli("dataset", str(released.release), "--repo-id", REPO, "--private", "--dry-run") == 0
    assert "a publish would refuse it" in capfd.readouterr().out


@pytest.mark.parametrize("name", ["shard.parquet", "notes.txt"])  # sent by LFS / inline in the commit
def test_a_file_changed_after_the_gate_is_never_committed(hub: HubServer, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"audited content\n" * 4096)
    bundle = Bundle("dataset", (LocalFile.from_path(name, path),), ())
    path.write_bytes(b"AUDITED CONTENT\n" * 4096)  # same size, other bytes: after the gate, before the upload
    with pytest.raises(
        PublishError, match=rf"{name} changed on disk while publishing .*nothing was committed"
    ):
        publish(bundle, REPO, say=lambda line: None)
    assert hub.stats.commits == 0 and _remote(hub) == {} and hub.stats.uploaded_bytes == 0


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (
            "builder.hub.publish._upload",
            "interrupted: nothing was committed: {repo} (created empty by this publish)",
        ),
        ("builder.hub.commit.post_commit", "interrupted: the commit's reply never came: {repo} holds either"),
        ("huggingface_hub.HfApi.create_tag", "interrupted: {repo} main holds this release as commit "),
    ],
)
def test_ctrl_c_while_publishing_says_what_the_hub_may_hold_in_one_line(
    hub: HubServer,
    released: BuildResult,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    said: str,
) -> None:
    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(where, stop)
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 130
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("interrupted: ")]
    assert len(lines) == 1 and lines[0].startswith(said.format(repo=REPO)), err
    assert "Traceback" not in err


def test_hf_hub_offline_is_one_line_at_once_never_retried(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["publish", "dataset", str(released.release), "--repo-id", REPO, "--backoff", "60"]) == 2
    line = _one_line_error(capfd)
    assert line.startswith("error: HF_HUB_OFFLINE is set: huggingface_hub sends no request in offline mode")
    assert "unset HF_HUB_OFFLINE" in line and hub.stats.requests == []


def test_a_token_with_a_character_outside_ascii_is_one_line(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_Secr\u00e9tToken")
    assert _cli("dataset", str(released.release), "--repo-id", REPO) == 2
    line = _one_line_error(capfd)
    assert "holds a character that is not printable ASCII at position 8 of 14" in line
    assert "Secr" not in line and hub.stats.requests == []


@pytest.mark.parametrize("status", [520, 521, 522, 523, 524, 501])
def test_a_cdns_52x_is_retried_and_501_is_not(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], status: int
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=status))
    code = _cli("dataset", str(released.release), "--repo-id", REPO)
    commits = [r for r in hub.stats.requests if r[0] == "POST" and "/commit/" in r[1]]
    if status == 501:
        assert code == 2 and len(commits) == 1
        assert "HTTP 501" in _one_line_error(capfd) and hub.stats.commits == 0
    else:
        assert code == 0 and [r[2] for r in commits] == [status, 200]
        assert f"attempt 1 failed (HTTP {status}: " in capfd.readouterr().out


def test_many_small_regular_files_are_streamed_into_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """huggingface_hub's create_commit base64-encodes every regular file into one body in memory.

    The local Hub runs in its own process here, so that only the publisher's memory is traced.
    """
    from huggingface_hub import HfApi

    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(400):
        (folder / f"part-{i:03d}.txt").write_bytes(os.urandom(24 << 10).hex().encode())  # 48 KiB each
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.hub.server",
            "--root",
            str(tmp_path / "hub"),
            "--token",
            f"{TOKEN}:t:{ORG}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        files = tuple(LocalFile.from_path(p.name, p) for p in sorted(folder.iterdir()))
        total = sum(f.size for f in files)
        tracemalloc.start()
        try:
            publish(Bundle("dataset", files, ()), REPO, say=lambda line: None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        api = HfApi(endpoint=url, token=TOKEN)
        remote = [f for f in api.list_repo_tree(REPO, repo_type="dataset") if f.path.endswith(".txt")]
        assert len(remote) == 400 and all(getattr(f, "lfs", None) is None for f in remote)  # sent inline
        got = api.hf_hub_download(REPO, "part-007.txt", repo_type="dataset", cache_dir=str(tmp_path / "c"))
        assert Path(got).read_bytes() == (folder / "part-007.txt").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    assert peak < total / 3, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.1f} MiB of files"


def test_redaction_hides_tokens_and_nothing_else() -> None:
    from builder.hub.client import redact

    shaped = "hf_" + "Ab1" * 11 + "Z"  # 34 letters and digits: the shape of an access token
    org = "api_org_" + "x" * 34
    text = f"hf_cropmarks hf_hub_download hf_transfer myorg/hf_dataset_v2 {shaped} {org} mine"
    assert redact(text, "mine") == (
        "hf_cropmarks hf_hub_download hf_transfer myorg/hf_dataset_v2 hf_*** api_org_*** ***"
    )
