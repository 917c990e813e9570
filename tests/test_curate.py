"""Curation rules: siblings, conflicts, quarantine, cross-split, missing files."""

from __future__ import annotations

import shutil
from pathlib import Path

from builder.corpus import read_manifests
from builder.curate import curate
from tests.data.factory import TinyCorpus


def _curate(corpus: TinyCorpus) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    root = corpus.write()
    curated = curate(root, read_manifests(root).rows)
    reasons: dict[str, int] = {}
    for r in curated.rejections:
        reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
    return [(c.split, c.source, c.label) for c in curated.candidates], reasons


def test_byte_identical_copies_are_one_composite(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=0)
    shutil.copy(tmp_path / "composites/site_train_0.jpg", tmp_path / "composites/copy.jpg")
    corpus.add_row("train", "composites/copy.jpg", "No")
    candidates, reasons = _curate(corpus)
    assert candidates == [("train", "composites/site_train_0.jpg", "No")]
    assert reasons == {"sibling_duplicate": 1}


def test_conflicting_labels_drop_the_composite_in_every_split(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=2, eval_=0)
    corpus.add_row("eval", "composites/site_train_0.jpg", "Yes")  # train says No
    candidates, reasons = _curate(corpus)
    assert candidates == [("train", "composites/site_train_1.jpg", "Yes")]
    assert reasons == {"label_conflict": 2}


def test_eval_keeps_a_composite_used_in_both_splits(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=1)
    corpus.add_row("train", "composites/site_eval_0.jpg", "No")
    corpus.add_row("train", "composites/site_eval_0.jpg", "No")
    candidates, reasons = _curate(corpus)
    assert ("eval", "composites/site_eval_0.jpg", "No") in candidates
    assert all(source != "composites/site_eval_0.jpg" for split, source, _ in candidates if split == "train")
    assert reasons == {"cross_split": 2}


def test_quarantine_by_folder_and_by_content(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=2, eval_=0)
    (tmp_path / "rejected_composites").mkdir()
    shutil.copy(tmp_path / "composites/site_train_1.jpg", tmp_path / "rejected_composites/bad.jpg")
    corpus.add_row("train", "rejected_composites/bad.jpg", "Yes")
    candidates, reasons = _curate(corpus)
    # site_train_1 is byte-identical to a quarantined file: its own row goes too.
    assert candidates == [("train", "composites/site_train_0.jpg", "No")]
    assert reasons == {"quarantined": 2}


def test_missing_file_is_counted(tmp_path: Path) -> None:
    corpus = TinyCorpus(tmp_path, train=1, eval_=0)
    corpus.add_row("train", "composites/gone.jpg", "Yes")
    _, reasons = _curate(corpus)
    assert reasons == {"missing_file": 1}
