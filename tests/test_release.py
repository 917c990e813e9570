"""The release: the card's numbers, loadability, determinism, atomicity."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.domain import tile_name
from builder.errors import ConfigError, EmptyReleaseError
from builder.release.build import BuildConfig, BuildResult, build, private_dir
from builder.release.report import BuildReport
from builder.testing.sample import SMALL_PLAN, Plan, generate


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_default_corpus_gives_the_cards_numbers(sample_release: BuildResult) -> None:
    counts = sample_release.report.counts
    # The card's 1,138 + 157 rows, plus 9 train rows the four gates reject (the sample exercises them).
    assert counts.rows == {"train": 1138 + 9, "eval": 157}
    assert counts.tiles == {"train": 767, "eval": 155}
    assert counts.rejected == {
        "sibling_duplicate": {"train": 353, "eval": 0},
        "quarantined": {"train": 10, "eval": 1},
        "label_conflict": {"train": 4, "eval": 0},
        "missing_file": {"train": 2, "eval": 1},
        "cross_split": {"train": 2, "eval": 0},
        "gate_s2_blank": {"train": 2, "eval": 0},
        "gate_s2_cloudy": {"train": 2, "eval": 0},
        "gate_no_context": {"train": 2, "eval": 0},
        "gate_not_agricultural": {"train": 3, "eval": 0},
    }
    # Every row is accounted for: published or rejected with a reason.
    rejected = sum(sum(v.values()) for v in counts.rejected.values())
    assert rejected + 767 + 155 == 1147 + 157
    for split, n in (("train", 767), ("eval", 155)):
        folder = sample_release.release / "data" / split
        assert len(list(folder.glob("*.jpg"))) == n


def test_load_dataset_gives_train_and_eval_with_classlabel(sample_release: BuildResult) -> None:
    from datasets import ClassLabel, DatasetDict, load_dataset
    from datasets import Image as ImageFeature

    ds = load_dataset(str(sample_release.release))
    assert isinstance(ds, DatasetDict)
    assert set(ds) == {"train", "eval"}
    assert ds["train"].num_rows == 767 and ds["eval"].num_rows == 155
    assert isinstance(ds["train"].features["image"], ImageFeature)
    assert ds["train"].features["label"] == ClassLabel(names=["No", "Yes"])
    with (sample_release.release / "data" / "eval" / "metadata.csv").open() as f:
        expected = sorted(row["label"] for row in csv.DictReader(f))
    names = ds["eval"].features["label"].names
    assert sorted(names[i] for i in ds["eval"]["label"]) == expected
    first = ds["eval"][0]["image"]
    assert first.size == (256, 512) and first.mode == "RGB"


def test_published_tiles_are_the_left_half_never_the_right(sample_release: BuildResult) -> None:
    corpus = Path(sample_release.report.corpus)
    modes = {"lossless": 0, "reencoded": 0}
    for tile in sample_release.report.tiles[:60]:
        composite = _pixels(corpus / tile.source)
        published = _pixels(sample_release.release / "data" / tile.split / tile.file_name)
        left, right = composite[:, :256], composite[:, 256:]
        to_left = np.abs(published - left)
        assert to_left.mean() < (0.25 if tile.cut == "lossless" else 3.0)
        assert np.abs(published - right).mean() > 10 * max(to_left.mean(), 1.0)
        if tile.cut == "lossless":
            # 4:2:0 sources: only the new edge column may differ (chroma upsampling).
            assert to_left[:, :-1].max() == 0
        modes[tile.cut] += 1
    assert modes["lossless"] > 0 and modes["reencoded"] > 0


def test_lossless_cut_of_a_444_jpeg_is_bit_identical(tmp_path: Path) -> None:
    from builder.ingest.composite import cut_s2_half
    from tests.data.factory import composite_pixels, jpeg_bytes

    src = tmp_path / "c.jpg"
    src.write_bytes(jpeg_bytes(composite_pixels(3), subsampling=0))
    cut = cut_s2_half(src)
    assert cut.mode == "lossless"
    out = tmp_path / "half.jpg"
    out.write_bytes(cut.data)
    assert np.array_equal(_pixels(out), _pixels(src)[:, :256])


def test_reencoded_tiles_use_q95_with_444_chroma(sample_release: BuildResult) -> None:
    from PIL import JpegImagePlugin

    tile = next(t for t in sample_release.report.tiles if t.cut == "reencoded")
    with Image.open(sample_release.release / "data" / tile.split / tile.file_name) as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4


def test_two_builds_are_byte_identical(small_corpus: Path, tmp_path: Path) -> None:
    a = build(BuildConfig(small_corpus, tmp_path / "a", "1.0.0"))
    b = build(BuildConfig(small_corpus, tmp_path / "b", "1.0.0", workers=2))
    assert _files(a.release) == _files(b.release)
    assert a.report.files == b.report.files


def test_names_are_opaque_and_stable() -> None:
    name = tile_name("0123456789abcdef" * 4)
    assert name == "d_tile_abcdefghijkl.jpg"
    assert not any(ch.isdigit() for ch in name.removeprefix("d_tile_"))


def test_private_report_sits_beside_the_release_never_inside(sample_release: BuildResult) -> None:
    assert sample_release.private == private_dir(sample_release.release)
    assert sample_release.private.parent == sample_release.release.parent
    assert (sample_release.private / "report.json").is_file()
    published = {p.name for p in sample_release.release.rglob("*")}
    assert "report.json" not in published
    tile = sample_release.report.tiles[0]
    assert {"source", "source_sha256", "site", "rows"} <= set(tile.to_dict())


def test_rebuild_replaces_the_previous_release(small_corpus: Path, tmp_path: Path) -> None:
    first = build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    before = _files(first.release)
    dropped = next(t for t in first.report.tiles if t.split == "eval")
    lines = (small_corpus / "sft" / "eval.jsonl").read_text().splitlines()
    gone = {int(where.rsplit(":", 1)[1]) for where in dropped.rows}
    kept = [line for number, line in enumerate(lines, start=1) if number not in gone]
    (small_corpus / "sft" / "eval.jsonl").write_text("\n".join(kept) + "\n")
    second = build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    assert second.release == first.release
    after = _files(second.release)
    assert set(before) - set(after) == {f"data/eval/{dropped.file_name}"}
    leftovers = [p.name for p in second.release.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_killed_build_leaves_the_old_release_intact(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    generate(corpus, seed=11, plan=SMALL_PLAN)
    old = build(BuildConfig(corpus, tmp_path / "out", "1.0.0"))
    before = _files(old.release)
    before_private = _files(old.private)
    # A bigger corpus so that the second build is still cutting when it is killed.
    big = tmp_path / "big"
    generate(big, seed=12, plan=Plan(unique_train=400, unique_eval=60, siblings=0))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "builder.cli",
            "build",
            "--corpus",
            str(big),
            "--out",
            str(tmp_path / "out"),
            "--version",
            "1.0.0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = tmp_path / "out" / "cropmark-disambiguator-s2" / f".1.0.0.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(staging.glob("data/train/*.jpg"))) < 20:
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _files(old.release) == before
    assert _files(old.private) == before_private
    assert staging.exists()  # the killed build's temporary is still there ...
    build(BuildConfig(corpus, tmp_path / "out", "1.0.0"))
    assert not staging.exists()  # ... and the next build removes it


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "../1.0.0", ""])
def test_bad_version_is_refused(small_corpus: Path, tmp_path: Path, version: str) -> None:
    with pytest.raises(ConfigError, match="not semantic"):
        build(BuildConfig(small_corpus, tmp_path, version))
    assert not (tmp_path / "cropmark-disambiguator-s2").exists()


def test_a_corpus_with_nothing_publishable_writes_nothing(tmp_path: Path) -> None:
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus", train=2, eval_=0).write()
    with pytest.raises(EmptyReleaseError, match="no tile of split 'eval'"):
        build(BuildConfig(corpus, tmp_path / "out", "1.0.0"))
    assert list((tmp_path / "out" / "cropmark-disambiguator-s2").iterdir()) == []


def test_build_does_not_import_torch(small_corpus: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from builder.release.build import BuildConfig, build; "
        f"build(BuildConfig(Path({str(small_corpus)!r}), Path({str(tmp_path)!r}), '1.0.0')); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_the_per_tile_work_imports_neither_the_build_nor_the_hub_client() -> None:
    # What a worker of the engine imports to run its tasks (curation's identity, the cut): the
    # build's cards would bring the Hub client, a third of a second of every worker's start.
    code = (
        "import sys; import builder.release.curate, builder.release.tile; "
        "print(sorted(m for m in ('builder.release.build', 'builder.release.cards', 'huggingface_hub', "
        "'jinja2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- one commit for the release and its report; the lock; workers die with the build -----------

_INJECT = """
import os, signal, sys
from builder.release import build as release

point, argv = sys.argv[1], sys.argv[2:]
swap_in, commit, swaps = release._swap_in, release._commit, []


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def swap(staged, final):
    if point == "after journal" and not swaps:
        _die()
    swap_in(staged, final)
    swaps.append(final)
    if (point, len(swaps)) in (("between swaps", 1), ("after swaps", 2)):
        _die()


def commit_killed(*args):
    if point == "before journal":
        _die()
    return commit(*args)


release._swap_in, release._commit = swap, commit_killed
from builder.cli import main

sys.exit(main(argv))
"""


def _build_killed_at(point: str, corpus: Path, out: Path) -> None:
    args = ["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0"]
    done = subprocess.run([sys.executable, "-c", _INJECT, point, *args], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _drop_an_eval_tile(corpus: Path, report: BuildReport) -> None:
    dropped = next(t for t in report.tiles if t.split == "eval")
    lines = (corpus / "sft" / "eval.jsonl").read_text().splitlines()
    gone = {int(where.rsplit(":", 1)[1]) for where in dropped.rows}
    kept = [line for number, line in enumerate(lines, start=1) if number not in gone]
    (corpus / "sft" / "eval.jsonl").write_text("\n".join(kept) + "\n")


@pytest.mark.parametrize("point", ["before journal", "after journal", "between swaps", "after swaps"])
def test_release_and_report_are_one_commit_whatever_the_kill_point(
    point: str, small_corpus: Path, tmp_path: Path
) -> None:

    from builder.files import journal_path
    from builder.release.audit import audit_release
    from builder.release.build import _recover, build_lock, tree_digest

    out = tmp_path / "out"
    old = build(BuildConfig(small_corpus, out, "1.0.0"))
    old_files, old_report = _files(old.release), (old.private / "report.json").read_bytes()
    _drop_an_eval_tile(small_corpus, old.report)
    new = build(BuildConfig(small_corpus, tmp_path / "reference", "1.0.0"))  # what the new pair is
    new_files = _files(new.release)
    assert new_files != old_files

    _build_killed_at(point, small_corpus, out)  # the kill point is injected, not timed
    journal = journal_path(old.release)
    if point == "before journal":
        assert not journal.exists()
        assert _files(old.release) == old_files  # the previous pair, untouched
        assert (old.private / "report.json").read_bytes() == old_report
        return
    assert journal.is_file()
    report = BuildReport.from_json((old.private / "report.json").read_bytes())
    if point == "between swaps":  # the new release beside the old report: refused, never published
        assert _files(old.release) == new_files
        assert (old.private / "report.json").read_bytes() == old_report
    findings = audit_release(old.release, report)
    assert any("a build was killed while putting this release and its report in place" in f for f in findings)
    with build_lock(old.release):  # what the next build does first
        _recover(old.release)
    assert not journal.exists()
    assert _files(old.release) == new_files  # the committed pair, whole
    report = BuildReport.from_json((old.private / "report.json").read_bytes())
    assert report.release_digest == tree_digest(old.release)
    assert audit_release(old.release, report) == []
    build(BuildConfig(small_corpus, out, "1.0.0"))  # and a build after it leaves no temporary behind
    assert [p.name for p in old.release.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("swaps_before", [1, 2])
def test_ctrl_c_during_the_commit_finishes_it_and_says_so(
    swaps_before: int,
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A SIGINT between the commit's swaps used to leave the new release beside the previous
    private report, and the clean-up removed the new report that recovery needed. The commit
    now runs whole, and the one line says the new pair is in place."""
    from builder.cli import main
    from builder.files import journal_path
    from builder.release import build as release
    from builder.release.audit import audit_release
    from builder.release.build import tree_digest

    out = tmp_path / "out"
    old = build(BuildConfig(small_corpus, out, "1.0.0"))
    old_files = _files(old.release)
    _drop_an_eval_tile(small_corpus, old.report)
    swap_in, swaps = release._swap_in, []

    def interrupted_swap(staged: Path, final: Path) -> None:
        swap_in(staged, final)
        swaps.append(final)
        if len(swaps) == swaps_before:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: handled in this (the main) thread

    monkeypatch.setattr(release, "_swap_in", interrupted_swap)
    args = ["build", "--corpus", str(small_corpus), "--out", str(out), "--version", "1.0.0"]
    assert main(["--quiet", *args]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"interrupted: it came during the commit, which was finished first: {old.release} and its "
        "private report are this build's"
    ]
    assert len(swaps) == 2 and not journal_path(old.release).exists()
    assert _files(old.release) != old_files  # the new release, with its own report
    report = BuildReport.from_json((old.private / "report.json").read_bytes())
    assert report.release_digest == tree_digest(old.release)
    assert audit_release(old.release, report) == []
    assert [p.name for p in old.release.parent.iterdir() if p.name.startswith(".")] == []


def test_a_second_build_into_the_same_release_is_refused(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from builder.cli import main

    out = tmp_path / "out"
    final = out / "cropmark-disambiguator-s2" / "1.0.0"
    final.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from builder.release.build import build_lock\n"
            f"with build_lock(Path({str(final)!r})):\n    print('locked', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        args = ["build", "--corpus", str(small_corpus), "--out", str(out), "--version", "1.0.0"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == (
            f"error: another build (process {holder.pid}) is writing {final}; "
            "wait for it to finish, or build into another --out\n"
        )
        assert sorted(p.name for p in final.parent.iterdir()) == [".1.0.0.lock"]  # the holder's, nothing else
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert main(args) == 0  # a lock whose holder died is free again
    assert not (final.parent / ".1.0.0.lock").exists()


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus big enough that a build is still cutting when a test kills it."""
    root = tmp_path_factory.mktemp("big") / "corpus"
    generate(root, seed=12, plan=Plan(unique_train=400, unique_eval=60, siblings=0))
    return root


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_the_build(sig: signal.Signals, big_corpus: Path, tmp_path: Path) -> None:
    import select

    out = tmp_path / "out"
    args = ["build", "--corpus", str(big_corpus), "--out", str(out), "--version", "1.0.0", "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    staging = out / "cropmark-disambiguator-s2" / f".1.0.0.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(staging.glob("data/train/*.jpg"))) < 20:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert proc.poll() is None and len(workers) >= 2, "the build finished before it could be killed"
    os.kill(proc.pid, sig)
    proc.wait()
    # A CI job piping the output must see its end: no worker still holds stdout open.
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready and proc.stdout.read1(65536) == b"":
                break
        else:
            pytest.fail("the build's stdout stayed open after it died")
        while time.monotonic() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.05)
        assert not any(_running(pid) for pid in workers)
    finally:
        proc.stdout.close()
        for pid in workers:  # never leave a worker behind when the test fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_mid_build_stops_it_with_one_line_and_nothing_in_place(
    big_corpus: Path, tmp_path: Path
) -> None:
    """SIGKILL of one worker (what the kernel's out-of-memory killer sends) in the middle of
    the cut: the pool's own error was 39 lines of its internals."""
    out = tmp_path / "out"
    with _build_in_its_own_group(big_corpus, out) as proc:
        staging = out / "cropmark-disambiguator-s2" / f".1.0.0.tmp-{proc.pid}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(staging.glob("data/train/*.jpg"))) < 20:
            time.sleep(0.02)
        workers = {pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)}
        assert proc.poll() is None and workers, "the build finished before a worker could be killed"
        os.kill(min(workers), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err.decode()
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: a worker process of the per-tile stage ended abruptly"
    )
    assert "fewer --workers" in lines[0]
    # Nothing of the build is left beside the (absent) release: no release, no staging folder.
    assert not (out / "cropmark-disambiguator-s2" / "1.0.0").exists()
    assert [p.name for p in (out / "cropmark-disambiguator-s2").iterdir()] == []
    assert not any(_running(pid) for pid in workers)


def _as_a_shells_job() -> None:
    """In the child, before it runs Python: SIGINT as a shell starts a job with it (default,
    unblocked), whatever this test process holds (a child inherits an ignored SIGINT, and
    Python then never raises KeyboardInterrupt in it)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def _build_in_its_own_group(corpus: Path, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``cropmark build --workers 2`` in its own process group, as a terminal's foreground job
    (Ctrl-C reaches every process of it); killed, group and all, if the test leaves it running."""
    args = ["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0", "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_as_a_shells_job,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_while_the_workers_start_is_one_line(small_corpus: Path, tmp_path: Path) -> None:
    """Ctrl-C goes to the terminal's whole foreground process group. Workers caught while
    still importing printed their own KeyboardInterrupt tracebacks around the build's one
    line; they start with SIGINT blocked, and the build's process alone answers it."""
    out = tmp_path / "out"
    with _build_in_its_own_group(small_corpus, out) as proc:
        deadline = time.monotonic() + 60
        spawned: set[int] = set()
        while time.monotonic() < deadline and len(spawned) < 2 and proc.poll() is None:
            spawned = {pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)}
            time.sleep(0.002)
        assert len(spawned) == 2, "the workers did not start"
        # The workers are importing now. A terminal's Ctrl-C lands at one moment; the test
        # sends the workers several, over their start, so that one lands wherever it hurt.
        for _ in range(20):
            for pid in spawned:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.decode().splitlines() == ["interrupted: the previous release, if any, is untouched"]
    assert not (out / "cropmark-disambiguator-s2" / "1.0.0").exists()
    assert not any(_running(pid) for pid in spawned)


def test_ctrl_c_pressed_again_while_the_build_stops_is_still_one_line(
    big_corpus: Path, tmp_path: Path
) -> None:
    """After the first Ctrl-C the build waits for its workers' chunks; a second one there was
    a traceback from the interpreter's exit and status -2."""
    out = tmp_path / "out"
    with _build_in_its_own_group(big_corpus, out) as proc:
        staging = out / "cropmark-disambiguator-s2" / f".1.0.0.tmp-{proc.pid}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(staging.glob("data/train/*.jpg"))) < 20:
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before it could be interrupted"
        for _ in range(3):  # Ctrl-C, and again, and again
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert err.decode().splitlines() == ["interrupted: the previous release, if any, is untouched"]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _dead_pid() -> int:
    """The id of a process that has exited (a killed build's temporaries carry one)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_matched_by_exact_version() -> None:
    from builder.release.build import stale_name

    pattern = stale_name("1.0.0-rc")
    for mine in (
        ".1.0.0-rc.tmp-12",
        ".1.0.0-rc.private.tmp-12",
        ".1.0.0-rc.parquet.tmp-12",
        ".1.0.0-rc.old-12",
    ):
        assert pattern.fullmatch(mine), mine
    for other in (
        ".1.0.0-rc.1.tmp-12",
        ".1.0.0-rc.1.private.tmp-12",
        ".1.0.0-rc.1.commit",
        ".1.0.0-rcx.tmp-12",
    ):
        assert not pattern.fullmatch(other), other


def test_a_build_never_removes_another_versions_temporaries(tmp_path: Path) -> None:
    """Building 1.0.0-rc leaves the journal-named temporaries of a killed 1.0.0-rc.1 build alone."""
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    parent = tmp_path / "out" / "cropmark-disambiguator-s2"
    parent.mkdir(parents=True)
    dead = _dead_pid()
    theirs = [parent / f".1.0.0-rc.1.tmp-{dead}", parent / f".1.0.0-rc.1.private.tmp-{dead}"]
    mine = parent / f".1.0.0-rc.tmp-{dead}"
    for folder in (*theirs, mine):
        folder.mkdir()
    build(BuildConfig(corpus, tmp_path / "out", "1.0.0-rc"))
    assert all(folder.is_dir() for folder in theirs)
    assert not mine.exists()


@pytest.mark.parametrize("target", ["release", "private"])
def test_a_symlink_where_the_release_or_report_goes_is_one_line(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from builder.cli import main
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    parent = tmp_path / "out" / "cropmark-disambiguator-s2"
    parent.mkdir(parents=True)
    link = parent / ("1.0.0" if target == "release" else "1.0.0.private")
    link.symlink_to(tmp_path / "nowhere")  # dangling
    assert main(["build", "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--version", "1.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a symbolic link; a build replaces only the folders it wrote" in err
    assert sorted(p.name for p in parent.iterdir()) == [link.name]  # nothing else written
    assert not (tmp_path / "nowhere").exists()


def test_a_sibling_layout_rebuild_leaves_no_temporaries(tmp_path: Path) -> None:
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    for _ in range(2):
        result = build(BuildConfig(corpus, tmp_path / "out", "1.0.0", layout="parquet"))
    assert sorted(p.name for p in result.release.parent.iterdir()) == ["1.0.0", "1.0.0.private"]


def test_a_composite_rewritten_during_the_build_stops_it_and_leaves_the_old_release(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Curation decides a composite's identity, copies and split on the bytes it read; a file
    that holds other bytes when the cut comes (another program writing the corpus) is not
    cut under that identity: the build stops in one line and the previous release stays."""
    from builder.errors import CorpusLayoutError
    from builder.release import build as release

    first = build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    before = _files(first.release)
    victim = next(t for t in first.report.tiles if t.split == "train").source
    other = next(t for t in first.report.tiles if t.split == "eval").source
    real_check = release.check_tile_names

    def check_then_rewrite(candidates: object) -> None:  # after curation, before the cut
        real_check(candidates)  # type: ignore[arg-type]
        (small_corpus / victim).write_bytes((small_corpus / other).read_bytes())

    monkeypatch.setattr(release, "check_tile_names", check_then_rewrite)
    with pytest.raises(CorpusLayoutError) as refused:
        build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    assert str(refused.value).startswith(f"{victim} changed while the build ran")
    assert "\n" not in str(refused.value)
    assert _files(first.release) == before
    assert [p.name for p in first.release.parent.iterdir() if p.name.startswith(".")] == []


def test_a_composite_removed_during_the_build_stops_it(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A composite curation read and that is gone (or a FIFO) when the cut comes was counted
    unreadable and its copies dropped as its duplicates (hostile test): the build stops."""
    from builder.errors import CorpusLayoutError
    from builder.release import build as release

    first = build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    before = _files(first.release)
    victim = next(t for t in first.report.tiles if t.split == "eval").source
    real_check = release.check_tile_names

    def check_then_remove(candidates: object) -> None:
        real_check(candidates)  # type: ignore[arg-type]
        (small_corpus / victim).unlink()
        os.mkfifo(small_corpus / victim)

    monkeypatch.setattr(release, "check_tile_names", check_then_remove)
    with pytest.raises(
        CorpusLayoutError, match=rf"^{victim} changed while the build ran \(it can no longer"
    ) as refused:
        build(BuildConfig(small_corpus, tmp_path, "1.0.0"))
    assert str(refused.value).count("read") == 1, refused.value  # not "...read: cannot read: ..."
    assert _files(first.release) == before


@pytest.mark.parametrize("before_cut", [b"", b"not yet a JPEG"])
def test_a_file_that_did_not_decode_and_is_rewritten_during_the_build_stops_it(
    before_cut: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file curation could not decode (empty, not a JPEG yet) is its own group; when a
    composite is written into it before the cut, it is not cut under that group's name
    (which the audit then refused as not opaque): the build stops in one line as well."""
    from builder.errors import CorpusLayoutError
    from builder.release import build as release
    from tests.data.factory import TinyCorpus, composite_pixels, jpeg_bytes

    corpus = TinyCorpus(tmp_path / "corpus", train=3, eval_=2)
    corpus.add_file("composites/late.jpg", before_cut, split="train", label="No")
    root = corpus.write()
    real_check = release.check_tile_names

    def check_then_write(candidates: object) -> None:
        real_check(candidates)  # type: ignore[arg-type]
        (root / "composites" / "late.jpg").write_bytes(jpeg_bytes(composite_pixels(999)))

    monkeypatch.setattr(release, "check_tile_names", check_then_write)
    with pytest.raises(CorpusLayoutError, match=r"^composites/late\.jpg changed while the build ran"):
        build(BuildConfig(root, tmp_path / "out", "1.0.0"))
    assert [p.name for p in (tmp_path / "out" / "cropmark-disambiguator-s2").iterdir()] == []


@pytest.mark.parametrize("full_at", ["a tile", "the lock"])
def test_a_full_disk_during_a_build_names_the_folder(
    full_at: str,
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A write on a full file system (a tile's, the lock's process number) failed with the
    write's own words, naming no folder ("[Errno 28] No space left on device"). It names the
    release's folder now, and nothing is left at the release path."""
    import errno

    from builder.cli import main
    from builder.release import build as release

    def no_space() -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if full_at == "a tile":
        real = Path.write_bytes

        def full(self: Path, data: bytes) -> int:
            if self.name.startswith("d_tile_"):
                raise no_space()
            return real(self, data)

        monkeypatch.setattr(Path, "write_bytes", full)
    else:
        real_write = os.write

        def full_write(fd: int, data: bytes) -> int:
            if data.strip().isdigit():  # the lock file's process number
                raise no_space()
            return real_write(fd, data)

        monkeypatch.setattr(release.os, "write", full_write)
    out = tmp_path / "out"
    assert main(["build", "--corpus", str(small_corpus), "--out", str(out), "--version", "1.0.0"]) == 2
    parent = out / "cropmark-disambiguator-s2"
    assert capsys.readouterr().err == (
        f"error: [Errno 28] No space left on device (writing the release): '{parent}'\n"
    )
    assert sorted(p.name for p in parent.iterdir()) == []
