"""Release pushes through the real huggingface_hub client against a local Hub server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.errors import AuditError, PublishConflictError, PublishError
from builder.hub.bundles import dataset_bundle
from builder.hub.publish import publish
from builder.release.build import BuildConfig, BuildResult, build
from tests.hub import TOKEN
from tests.hub.server import Fault, HubServer

REPO = "cropmark-org/cropmark-disambiguator-s2"
ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def _read(capfd: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """What the test printed so far; it never holds the token."""
    out = capfd.readouterr()
    assert TOKEN not in out.out + out.err
    return out.out, out.err


def _build(corpus: Path, out: Path, version: str = "1.0.0") -> BuildResult:
    return build(BuildConfig(corpus, out, version, repo_id=REPO))


def _publish_cli(*args: str) -> int:
    return main(["publish", *args, "--backoff", "0.01"])


def _local(release: Path) -> dict[str, bytes]:
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in release.rglob("*") if p.is_file()}


def _remote(hub: HubServer, kind: str = "dataset", repo: str = REPO) -> dict[str, bytes]:
    files = hub.files(kind, repo)
    files.pop(".gitattributes")
    return files


def _writes(hub: HubServer) -> list[tuple[str, str, int]]:
    return [r for r in hub.stats.requests if r[0] in ("POST", "PUT") and "paths-info" not in r[1]]


def _change_one_tile(corpus: Path, result: BuildResult) -> str:
    """Brighten the S2 half of one composite in the corpus; returns the old tile name."""
    tile = next(t for t in result.report.tiles if t.source.endswith(".png") and len(t.rows) == 1)
    path = corpus / tile.source
    pixels = np.asarray(Image.open(path).convert("RGB")).copy()
    pixels[:64, :64] = np.clip(pixels[:64, :64].astype(int) + 40, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return str(tile.file_name)


@pytest.fixture
def released(small_corpus: Path, tmp_path: Path) -> BuildResult:
    return _build(small_corpus, tmp_path / "build")


# -- publish, load, re-publish ---------------------------------------------------------------


def test_publish_then_load_dataset_through_the_hub_gives_the_folder_rows(
    hub: HubServer, released: BuildResult
) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    assert _remote(hub) == _local(released.release)
    assert hub.repo("dataset", REPO).tags == {"v1.0.0": hub.repo("dataset", REPO).branches["main"]}
    assert hub.stats.commits == 1
    script = (
        "import hashlib, json, sys\n"
        "from datasets import Image, load_dataset\n"
        "def rows(ds):\n"
        "    return {s: sorted((r['label'], hashlib.sha256(r['image']['bytes'] or open(r['image']['path'], 'rb')"
        ".read()).hexdigest()) for r in ds[s].cast_column('image', Image(decode=False))) for s in ds}\n"
        "hub, folder = load_dataset(sys.argv[1]), load_dataset(sys.argv[2])\n"
        "print(json.dumps({'hub': rows(hub), 'folder': rows(folder), 'names': hub['train'].features['label'].names}))\n"
    )
    env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-c", script, REPO, str(released.release)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["hub"] == loaded["folder"]
    assert {s: len(r) for s, r in loaded["hub"].items()} == released.report.counts.tiles
    assert loaded["names"] == ["No", "Yes"]


def test_unchanged_republish_uploads_nothing_and_makes_no_commit(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    head = hub.repo("dataset", REPO).branches["main"]
    hub.stats.reset()
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    assert (hub.stats.commits, hub.stats.uploaded_bytes, hub.stats.uploaded_files) == (0, 0, 0)
    assert _writes(hub) == []
    assert hub.repo("dataset", REPO).branches["main"] == head
    assert "nothing to commit" in _read(capfd)[0]


def test_one_changed_tile_uploads_one_image_and_deletes_the_old_in_the_same_commit(
    hub: HubServer, small_corpus: Path, tmp_path: Path
) -> None:
    first = _build(small_corpus, tmp_path / "build")
    assert _publish_cli("dataset", str(first.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    old = _local(first.release)
    old_name = _change_one_tile(small_corpus, first)
    second = _build(small_corpus, tmp_path / "build", "1.0.1")
    hub.stats.reset()
    assert _publish_cli("dataset", str(second.release), "--repo-id", REPO, "--tag", "v1.0.1") == 0
    assert hub.stats.commits == 1
    lfs_puts = [r for r in hub.stats.requests if r[0] == "PUT"]
    assert len(lfs_puts) == 1  # the one new tile; metadata.csv travels inside the commit
    remote = _remote(hub)
    assert remote == _local(second.release)
    assert not any(p.endswith(old_name) for p in remote)
    new_tile = set(_local(second.release)) - set(old)
    assert len(new_tile) == 1
    assert hub.stats.uploaded_bytes < 2 * len(remote[new_tile.pop()]) + 10_000
    repo = hub.repo("dataset", REPO)
    assert (
        repo.commits[repo.tags["v1.0.1"]].title
        == "Release v1.0.1: 1 added, 2 changed, 1 deleted, 34 unchanged"  # metadata.csv and the card
    )


def test_a_deleted_tile_leaves_the_remote_in_the_same_commit(
    hub: HubServer, small_corpus: Path, tmp_path: Path
) -> None:
    first = _build(small_corpus, tmp_path / "build")
    assert _publish_cli("dataset", str(first.release), "--repo-id", REPO, "--no-tag") == 0
    tile = next(t for t in first.report.tiles if len(t.rows) == 1)
    (small_corpus / tile.source).unlink()  # its row becomes a missing-file rejection
    second = _build(small_corpus, tmp_path / "build")
    hub.stats.reset()
    assert _publish_cli("dataset", str(second.release), "--repo-id", REPO, "--no-tag") == 0
    assert hub.stats.commits == 1
    remote = _remote(hub)
    assert remote == _local(second.release)
    assert f"data/{tile.split}/{tile.file_name}" not in remote
    repo = hub.repo("dataset", REPO)
    head = repo.commits[repo.branches["main"]]
    parent = repo.commits[head.parent or ""]
    assert f"data/{tile.split}/{tile.file_name}" in parent.files  # removed by this very commit


@pytest.mark.parametrize("layout", ["parquet", "sft-jsonl", "hdf5"])
def test_sibling_layouts_publish_through_the_same_gate(
    hub: HubServer, small_corpus: Path, tmp_path: Path, layout: str
) -> None:
    from builder.layouts.base import LayoutOptions

    options = LayoutOptions(fractions=(0.6, 0.2, 0.2))
    result = build(
        BuildConfig(
            small_corpus, tmp_path / "b", "1.0.0", repo_id=REPO, layout=layout, layout_options=options
        )
    )
    assert _publish_cli("dataset", str(result.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    assert _remote(hub) == _local(result.release)
    assert hub.stats.commits == 1
    # The gate runs the layout's own audit: a stray file is refused before any write.
    (result.release / "notes.txt").write_text("kept for later\n")
    writes = len(_writes(hub))
    with pytest.raises(AuditError, match=r"notes\.txt: not part of a"):
        dataset_bundle(result.release, REPO)
    assert len(_writes(hub)) == writes


def test_dry_run_prints_the_plan_and_writes_nothing(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--dry-run") == 0
    out = _read(capfd)[0]
    n = len(_local(released.release))
    assert f"(new repo): {n} added, 0 changed, 0 deleted, 0 unchanged" in out
    assert "+ README.md (" in out and "dry run: nothing was written" in out
    assert _writes(hub) == [] and not hub.state.repos


def test_dry_run_without_a_reachable_hub_plans_against_an_empty_repo(
    released: BuildResult, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--dry-run") == 0
    out = _read(capfd)[0]
    assert "planning against an empty repo" in out and "dry run: nothing was written" in out


# -- gate first ------------------------------------------------------------------------------


def test_a_release_the_audit_refuses_is_never_sent(hub: HubServer, released: BuildResult) -> None:
    tile = next((released.release / "data" / "train").glob("*.jpg"))
    tile.write_bytes(tile.read_bytes() + b"lat=51.5")
    with pytest.raises(AuditError, match="audit refused"):
        dataset_bundle(released.release, REPO)
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 2
    assert hub.stats.requests == []


def test_a_card_with_a_wrong_figure_is_never_sent(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    readme = released.release / "README.md"
    text = readme.read_text(encoding="utf-8")
    train = released.report.counts.tiles["train"]
    readme.write_text(text.replace(f"**{train} train**", f"**{train + 1} train**"), encoding="utf-8")
    # The file manifest in the private report catches the edit first; either way nothing is sent.
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 2
    assert hub.stats.requests == []
    assert "nothing was published" in _read(capfd)[1].lower()


def test_a_card_built_for_another_repo_is_refused(
    hub: HubServer, small_corpus: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = build(BuildConfig(small_corpus, tmp_path / "b", "1.0.0"))  # no --repo-id
    assert _publish_cli("dataset", str(result.release), "--repo-id", REPO) == 2
    err = _read(capfd)[1]
    assert f"rebuild with `cropmark build --repo-id {REPO}`" in err and err.count("\n") == 1
    assert hub.stats.requests == []


def test_a_folder_without_its_private_report_is_refused(
    hub: HubServer, released: BuildResult, tmp_path: Path
) -> None:
    copy = tmp_path / "elsewhere" / "1.0.0"
    shutil.copytree(released.release, copy)
    with pytest.raises(PublishError, match="only releases made by `cropmark build`"):
        dataset_bundle(copy, REPO)


# -- tags ------------------------------------------------------------------------------------


def test_an_existing_tag_is_never_moved_to_other_content(
    hub: HubServer, small_corpus: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = _build(small_corpus, tmp_path / "build")
    assert _publish_cli("dataset", str(first.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    tagged = hub.repo("dataset", REPO).tags["v1.0.0"]
    old = _local(first.release)
    _change_one_tile(small_corpus, first)
    second = _build(small_corpus, tmp_path / "build")
    hub.stats.reset()
    assert _publish_cli("dataset", str(second.release), "--repo-id", REPO, "--tag", "v1.0.0") == 2
    assert "tags are never moved" in _read(capfd)[1]
    assert hub.stats.commits == 0 and hub.repo("dataset", REPO).tags["v1.0.0"] == tagged
    assert _remote(hub) == old


def test_private_creates_a_private_repo(hub: HubServer, released: BuildResult) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--private") == 0
    assert hub.repo("dataset", REPO).private


# -- faults ----------------------------------------------------------------------------------

# fault -> (does a single-attempt publish fail?, what the remote holds after it)
# huggingface_hub's own retries are off while publishing (builder.hub.client.single_tries): every
# fault fails a single attempt, and the next publish (a new plan) reaches the new release.
FAULTS: dict[str, tuple[Fault, bool, str]] = {
    "5xx on commit": (Fault("POST", r"/commit/", status=503), True, "old"),
    "connection dropped on commit": (Fault("POST", r"/commit/", drop=True), True, "old"),
    "reply to the commit lost": (Fault("POST", r"/commit/", status=502, lost_reply=True), True, "new"),
    "5xx on preupload": (Fault("POST", r"/preupload/", status=500), True, "old"),
    "5xx on the LFS batch": (Fault("POST", r"/info/lfs/objects/batch", status=500), True, "old"),
    "connection dropped mid-upload": (Fault("PUT", r"/lfs/upload/", drop=True), True, "old"),
    "CDN 522 page on the commit": (Fault("POST", r"/commit/", status=522), True, "old"),
    "5xx on the tag": (Fault("POST", r"/tag/", status=500), True, "new"),
    "5xx reading the refs": (Fault("GET", r"/refs$", status=500), True, "old"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_under_a_fault_the_remote_is_old_or_new_never_a_mix_and_a_retry_reaches_new(
    name: str, hub: HubServer, small_corpus: Path, tmp_path: Path
) -> None:
    first = _build(small_corpus, tmp_path / "build")
    assert _publish_cli("dataset", str(first.release), "--repo-id", REPO, "--tag", "v1.0.0") == 0
    old = _local(first.release)
    _change_one_tile(small_corpus, first)
    manifest = small_corpus / "sft" / "train.jsonl"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-3]) + "\n")
    second = _build(small_corpus, tmp_path / "build", "2.0.0")
    new = _local(second.release)
    assert old != new
    fault, fails, after = FAULTS[name]
    hub.inject(fault)
    code = main(["publish", "dataset", str(second.release), "--repo-id", REPO, "--attempts", "1"])
    assert fault.fired
    assert (code != 0) == fails
    assert _remote(hub) == {"old": old, "new": new}[after]
    assert ("v2.0.0" in hub.repo("dataset", REPO).tags) == (not fails)
    assert _publish_cli("dataset", str(second.release), "--repo-id", REPO) == 0
    assert _remote(hub) == new
    repo = hub.repo("dataset", REPO)
    assert repo.commits[repo.tags["v2.0.0"]].files.keys() - {".gitattributes"} == new.keys()
    assert hub.stats.commits == 2  # the first release and this one: a lost reply never commits twice


def test_retries_with_backoff_within_one_publish(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=503))
    hub.inject(Fault("POST", r"/commit/", status=500, lost_reply=True))  # the next commit after that
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--attempts", "3") == 0
    out = _read(capfd)[0]
    assert out.count("retrying in") == 2 and "(3 attempt(s))" in out
    assert hub.stats.commits == 1 and _remote(hub) == _local(released.release)


def test_a_409_on_commit_is_reported_and_not_forced(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    hub.inject(Fault("POST", r"/commit/", status=409))
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 2
    err = _read(capfd)[1]
    assert "changed while publishing (HTTP 409" in err and "nothing was forced" in err
    assert err.splitlines()[-1].startswith("error: ") and "error: " not in "".join(err.splitlines()[:-1])
    assert hub.stats.commits == 0
    assert _remote(hub) == {}


def test_a_stale_parent_commit_is_a_conflict_not_an_overwrite(
    hub: HubServer, small_corpus: Path, tmp_path: Path
) -> None:
    first = _build(small_corpus, tmp_path / "build")
    assert _publish_cli("dataset", str(first.release), "--repo-id", REPO) == 0
    old = _local(first.release)
    _change_one_tile(small_corpus, first)
    second = _build(small_corpus, tmp_path / "build", "1.0.1")
    hub.inject(
        Fault("POST", r"/commit/", before=lambda: hub.commit_file("dataset", REPO, "notes.txt", b"theirs"))
    )
    with pytest.raises(PublishConflictError, match="HTTP 412"):
        publish(dataset_bundle(second.release, REPO), REPO, say=lambda line: None)
    remote = _remote(hub)
    assert remote.pop("notes.txt") == b"theirs" and remote == old


# -- credentials -----------------------------------------------------------------------------


def test_the_token_is_sent_but_never_printed_even_in_errors(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 0
    hub.inject(Fault("POST", r"/commit/", status=401))
    hub.inject(Fault("POST", r"/preupload/", status=500))
    (released.release / "NOTICE.md").write_text("changed", encoding="utf-8")
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 2  # the audit: file changed
    for attempts in ("1", "2"):
        assert (
            main(["publish", "dataset", str(released.release), "--repo-id", REPO, "--attempts", attempts])
            == 2
        )
    out = capfd.readouterr()
    assert TOKEN in hub.state.tokens  # it was used, in the Authorization header
    assert TOKEN not in out.out + out.err + caplog.text


def test_the_token_of_huggingface_hubs_login_is_used_when_hf_token_is_unset(
    hub: HubServer, released: BuildResult, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    token_file = tmp_path / "login" / "token"  # where `hf auth login` stores it
    token_file.parent.mkdir()
    token_file.write_text(TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO) == 0
    assert hub.state.tokens == {TOKEN}


def test_publish_script_is_the_cli(released: BuildResult) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "publish.py"),
            "dataset",
            str(released.release),
            "--repo-id",
            "bad id",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: cropmark publish: argument --repo-id: 'bad id' is not a Hub id ORG/NAME"
    )
    assert done.stderr.count("\n") == 1


def test_plan_sizes_are_human(
    hub: HubServer, released: BuildResult, capfd: pytest.CaptureFixture[str]
) -> None:
    assert _publish_cli("dataset", str(released.release), "--repo-id", REPO, "--dry-run") == 0
    sizes = re.findall(r"\+ data/train/d_tile_[a-p]{12}\.jpg \((\d+\.\d) KiB\)", _read(capfd)[0])
    assert sizes and all(0 < float(s) < 512 for s in sizes)
