"""builder.spill: records kept on disk read back as the sequences they were, and the report
reads through them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from builder.records import PrivateTile
from builder.spill import Mapped, Spilled


def _tile(i: int) -> PrivateTile:
    gates = ({"gate": "s2_not_blank", "evaluated": True, "passed": True, "values": {"std": i / 7}},)
    return PrivateTile(
        "train",
        f"t{i}.jpg",
        "Yes",
        f"composites/{i}.jpg",
        "a" * 64,
        "b" * 64,
        "lossless",
        (f"sft:{i}",),
        gates,
    )


def test_spilled_reads_back_every_record_in_order(tmp_path: Path) -> None:
    items = [_tile(i) for i in range(300)]
    spilled: Spilled[PrivateTile] = Spilled(tmp_path)
    for item in items:
        spilled.append(item)
    assert len(spilled) == 300 and list(spilled) == items
    assert spilled[0] == items[0] and spilled[-1] == items[-1] and spilled[10:13] == items[10:13]
    assert spilled[::-100] == items[::-100]
    # Nested and repeated iteration: reads do not share a file position.
    small = Spilled(tmp_path, items[:20])
    assert [(a, b) for a in small for b in small] == [(a, b) for a in items[:20] for b in items[:20]]
    assert sum(1 for _ in spilled) == sum(1 for _ in spilled) == 300
    with pytest.raises(IndexError):
        spilled[300]
    with pytest.raises(IndexError):
        spilled[-301]
    assert os.listdir(tmp_path) == []  # the file has no name: nothing is left behind


def test_spilled_retain_keeps_order_and_pickles_as_a_tuple(tmp_path: Path) -> None:
    spilled = Spilled(tmp_path, [_tile(i) for i in range(50)])
    spilled.retain(lambda t: int(t.file_name[1:-4]) % 3 != 0)
    assert [t.file_name for t in spilled] == [f"t{i}.jpg" for i in range(50) if i % 3]
    spilled.append(_tile(99))
    assert spilled[-1] == _tile(99) and len(spilled) == 34
    assert pickle.loads(pickle.dumps(spilled)) == tuple(spilled)
    empty: Spilled[PrivateTile] = Spilled(tmp_path)
    assert len(empty) == 0 and list(empty) == [] and not empty


def test_mapped_makes_each_item_when_read(tmp_path: Path) -> None:
    made: list[int] = []

    def make(t: PrivateTile) -> str:
        made.append(1)
        return t.file_name

    view = Mapped(Spilled(tmp_path, [_tile(i) for i in range(5)]), make)
    assert not made
    assert view[1] == "t1.jpg" and view[-1] == "t4.jpg" and view[1:3] == ["t1.jpg", "t2.jpg"]
    assert view == ("t0.jpg", "t1.jpg", "t2.jpg", "t3.jpg", "t4.jpg") == tuple(view)
    assert view != ("t0.jpg",) and len(view) == 5
    assert pickle.loads(pickle.dumps(view)) == tuple(view)


LEFT_AFTER_FAILURE: list[str] = []


def _open_under(folder: Path) -> list[str]:
    """This process's open descriptors on files under ``folder`` (unnamed ones included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.parametrize("where", ["card", "audit"])
def test_a_failed_build_frees_its_spill_files_before_it_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A build that fails after the tiles are cut closes its spilled records at once (the
    exception's traceback, which keeps the build's frames alive, does not keep them open) and
    leaves nothing in the output folder."""
    from builder.errors import AuditError
    from builder.release import build as release
    from builder.release.build import BuildConfig, build
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    out = tmp_path / "out"
    if where == "card":

        def broken_card(*args: object, **kwargs: object) -> str:
            raise OSError(28, "No space left on device", "README.md")

        monkeypatch.setattr(release.cards, "dataset_card", broken_card)
        expected: type[BaseException] = OSError
    else:
        monkeypatch.setattr(release.audit, "audit_release", lambda *a, **k: ["data/x.jpg: planted finding"])
        expected = AuditError
    with pytest.raises(expected) as failure:
        build(BuildConfig(corpus, out, "1.0.0", workers=1))
    assert failure.traceback  # the frames are still referenced here
    assert _open_under(out) == []
    assert sorted(p.name for p in (out / "cropmark-disambiguator-s2").iterdir()) == LEFT_AFTER_FAILURE


def test_a_full_disk_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spilled: Spilled[int] = Spilled(tmp_path)

    def full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError) as failure:
        spilled.append(1)
    assert (
        str(failure.value)
        == f"[Errno 28] No space left on device (the build's temporary records): '{tmp_path}'"
    )
    assert len(spilled) == 0


def test_a_file_that_cannot_be_made_names_the_folder_not_a_temporary_name(tmp_path: Path) -> None:
    # tempfile's own error names a file it tried and that never existed (tmpXXXXXXXX): a folder
    # without free inodes or one that is gone says the folder, as a full disk does.
    missing = tmp_path / "gone"
    with pytest.raises(OSError) as failure:
        Spilled(missing)
    assert (
        str(failure.value)
        == f"[Errno 2] No such file or directory (the build's temporary records): '{missing}'"
    )


def test_a_built_result_holds_its_records_open_until_it_is_closed(tmp_path: Path) -> None:
    """A successful build's ``report.tiles`` reads from the spilled records, which stay open
    (taking disk space beside the release) while the result is held; ``with`` or ``close``
    frees them, and a read afterwards is a clear error, never another file's bytes."""
    from builder.release.build import BuildConfig, build
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    out = tmp_path / "out"
    with build(BuildConfig(corpus, out, "1.0.0", workers=1)) as result:
        assert len(_open_under(out)) == 1  # the private records, unnamed
        names = [t.file_name for t in result.report.tiles]
        assert names and result.report.tiles[0].file_name == names[0]
    assert _open_under(out) == []
    freed = r"read after close: the temporary records in .* were freed"
    # The file opened here may take the freed descriptor's number: its bytes are never read.
    with (tmp_path / "other.txt").open("w"), pytest.raises(ValueError, match=freed):
        list(result.report.tiles)
    result.close()  # a second close does nothing
