"""The standing adversarial suite: hostile inputs mixed into a corpus of the sample's size.

Every case of :mod:`tests.data.adversarial` has its expected outcome: a counted
rejection under its reason, a tile that is exactly the left half of the
displayed composite, an audit finding that names the planted leak, or a
one-line error with nothing written.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.ingest.scrub import metadata_segments
from builder.release.audit import BLOCK_TOLERANCE, audit_release
from builder.release.build import BuildConfig, BuildResult, build
from builder.release.report import AuditResult, BuildReport
from tests.data.adversarial import FATAL, CorpusCase, plant_corpus, plant_release
from tests.data.factory import TinyCorpus

# The sample release's rejections (tests/test_release.py pins them); hostile cases add to these.
SAMPLE_REJECTED = {
    "sibling_duplicate": 353,
    "quarantined": 11,
    "label_conflict": 4,
    "missing_file": 3,
    "cross_split": 2,
    "gate_s2_blank": 2,
    "gate_s2_cloudy": 2,
    "gate_no_context": 2,
    "gate_not_agricultural": 3,
}


@pytest.fixture(scope="module")
def hostile(
    sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BuildResult, list[CorpusCase]]:
    root = tmp_path_factory.mktemp("hostile") / "corpus"
    shutil.copytree(sample_corpus, root, symlinks=True)
    cases = plant_corpus(root)
    return build(BuildConfig(root, root.parent / "out", "1.0.0", workers=2)), cases


def test_at_least_sixty_kinds_each_with_an_outcome(hostile: tuple[BuildResult, list[CorpusCase]]) -> None:
    _, cases = hostile
    kinds = {c.kind for c in cases} | {k for k, _, _ in FATAL} | {"leaks"}
    assert len(cases) + len(FATAL) >= 60 and len(kinds) == len(cases) + len(FATAL) + 1


def test_every_hostile_case_has_its_outcome(hostile: tuple[BuildResult, list[CorpusCase]]) -> None:
    result, cases = hostile
    report = result.report
    rejected: dict[str, str] = {}
    for r in report.rejections:
        rejected.setdefault(r.where, r.reason.value)
    tiles = {t.source: t for t in report.tiles}
    expected_counts = dict(SAMPLE_REJECTED)
    for case in cases:
        if case.expect in ("published", "read", "card quotes it"):
            continue
        got = rejected.get(case.where) or rejected.get(case.source or "")
        assert got == case.expect, (case.kind, got)
        assert case.source not in tiles, case.kind  # nothing of it is published
        expected_counts[case.expect] = expected_counts.get(case.expect, 0) + 1
    counted = {reason: sum(per.values()) for reason, per in report.counts.rejected.items()}
    assert counted == expected_counts
    # The byte-order mark: the first eval row is read, not rejected.
    assert "sft/eval.jsonl:1" not in rejected
    assert report.counts.tiles["eval"] == 155


def test_published_hostile_tiles_are_the_displayed_left_half(
    hostile: tuple[BuildResult, list[CorpusCase]],
) -> None:
    result, cases = hostile
    tiles = {t.source: t for t in result.report.tiles}
    published = [c for c in cases if c.expect == "published"]
    assert len(published) >= 20
    for case in published:
        assert case.source is not None
        tile = tiles[case.source]
        data = (result.release / "data" / tile.split / tile.file_name).read_bytes()
        assert metadata_segments(data) == [], case.kind
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        if case.truth is not None:
            truth = case.truth.astype(np.int16)
            to_left = np.abs(pixels - truth[:, :256]).mean()
            to_right = np.abs(pixels - truth[:, 256:]).mean()
            assert to_left < 4.0 and to_right > 25.0, (case.kind, to_left, to_right)
        if case.lossless is not None:
            assert (tile.cut == "lossless") is case.lossless, (case.kind, tile.cut, tile.cut_detail)


def test_the_card_quotes_a_many_decimal_threshold_and_passes(
    hostile: tuple[BuildResult, list[CorpusCase]],
) -> None:
    result, _ = hostile
    card = (result.release / "README.md").read_text(encoding="utf-8")
    assert "0.100000000123" in card
    assert result.report.audit == AuditResult(passed=True, findings=())
    # The card says why JPEG composites were re-encoded (8 orientations less 1, XMP: 8).
    assert (
        "or from JPEGs that a lossless cut cannot keep (8 with an EXIF orientation, cut as a viewer" in card
    )
    assert "3 whose colour space is not plainly YCbCr" in card  # Adobe RGB, and with IDs 1 2 3, 0 1 2


def test_every_planted_leak_is_a_finding_that_names_it(
    hostile: tuple[BuildResult, list[CorpusCase]], tmp_path: Path
) -> None:
    result, _ = hostile
    release = tmp_path / "1.0.0"
    shutil.copytree(result.release, release, symlinks=True)
    shutil.copytree(result.private, tmp_path / "1.0.0.private")
    leaks, report = plant_release(release, result.report)
    assert len(leaks) >= 40
    findings = audit_release(release, report)
    for leak in leaks:
        hits = [f for f in findings if f.startswith(leak.where) and leak.expect in f]
        assert hits, (leak.kind, leak.where, leak.expect, [f for f in findings if f.startswith(leak.where)])
    # Nothing else is refused: every finding is at a planted place.
    for finding in findings:
        assert any(
            finding.startswith(leak.where) or finding.startswith(f"path {leak.where}") for leak in leaks
        ) or (finding.startswith("path ") and any(finding[5:].startswith(leak.where) for leak in leaks)), (
            finding
        )
    _no_private_value_in_full(findings, report)


def _no_private_value_in_full(findings: list[str], report: BuildReport) -> None:
    from builder.scan import private_values

    text = "\n".join(findings)
    for value in private_values(report.tiles):
        assert value not in text, value
    for site in (t.site for t in report.tiles if t.site):
        assert f"{site.lat:.4f}" not in text and site.source_id not in text


def test_a_pasted_patch_is_found_where_it_was_pasted(
    hostile: tuple[BuildResult, list[CorpusCase]], tmp_path: Path
) -> None:
    """The block check finds a 32x32 patch at any offset; the whole-tile mean alone would not."""
    from builder.ingest.composite import encode_jpeg, open_displayed
    from builder.ingest.scrub import strip_jpeg

    result, _ = hostile
    tile = next(t for t in result.report.tiles if t.split == "train" and t.cut == "lossless")
    path = result.release / "data" / "train" / tile.file_name
    composite = open_displayed(Path(result.report.corpus) / tile.source)
    context = np.asarray(composite)[:, 256:]
    with Image.open(path) as image:
        clean = np.asarray(image.convert("RGB")).copy()
    from builder.release.audit import check_half

    for x, y in ((0, 0), (224, 480), (117, 333)):
        pixels = clean.copy()
        pixels[y : y + 32, x : x + 32] = context[y : y + 32, x : x + 32]
        data = strip_jpeg(encode_jpeg(Image.fromarray(pixels)))
        mean = np.abs(
            np.asarray(Image.open(io.BytesIO(data)), dtype=np.int16)
            - np.asarray(composite, dtype=np.int16)[:, :256]
        ).mean()
        assert mean < 4.0  # the old whole-tile tolerance would have passed it
        (finding,) = check_half(data, Path(result.report.corpus) / tile.source, "t")
        worst = finding.split("worst at ")[1].split(":")[0]
        wx, wy = (int(part.split("=")[1]) for part in worst.split(", "))
        assert x - 16 < wx < x + 32 and y - 16 < wy < y + 32, (finding, x, y)
        assert f"> {BLOCK_TOLERANCE}" in finding


@pytest.mark.parametrize("kind", [k for k, _, _ in FATAL])
def test_corpus_faults_are_one_line_errors_with_nothing_written(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from builder.cli import main

    change, message = next((c, m) for k, c, m in FATAL if k == kind)
    corpus = TinyCorpus(tmp_path / "corpus").write()
    change(corpus)
    out = tmp_path / "out"
    assert main(["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert "51.507" not in err and "41.273" not in err  # a private value in sites.csv is never printed
    assert (
        not (out / "cropmark-disambiguator-s2").exists()
        or list((out / "cropmark-disambiguator-s2").iterdir()) == []
    )


def test_a_leaking_release_is_refused_by_the_cli_audit(
    hostile: tuple[BuildResult, list[CorpusCase]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from builder.cli import main

    result, _ = hostile
    release = tmp_path / "1.0.0"
    shutil.copytree(result.release, release)
    leaks, report = plant_release(release, result.report)
    (tmp_path / "1.0.0.private").mkdir()
    (tmp_path / "1.0.0.private" / "report.json").write_bytes(report.to_json())
    assert main(["audit", str(release)]) == 1
    out = capsys.readouterr().out
    assert out.count("FINDING ") >= len({leak.where for leak in leaks})
