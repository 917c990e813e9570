"""Every audit finding, seeded into a good release, is caught."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from builder.files import files_digest
from builder.release import audit
from builder.release.audit import audit_release
from builder.release.build import BuildConfig, BuildResult, build
from builder.release.report import BuildReport
from builder.testing.sample import SMALL_PLAN, generate


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("audit")
    generate(root / "corpus", seed=3, plan=SMALL_PLAN)
    return build(BuildConfig(root / "corpus", root / "out", "1.0.0"))


@pytest.fixture
def release(built: BuildResult, tmp_path: Path) -> tuple[Path, BuildReport]:
    target = tmp_path / "release"
    shutil.copytree(built.release, target)
    return target, built.report


def _first_tile(release: Path) -> Path:
    return sorted((release / "data" / "train").glob("*.jpg"))[0]


def _append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _rewrite_csv(release: Path, split: str, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    path = release / "data" / split / "metadata.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(edit(rows))
    path.write_text(buf.getvalue())


def _set_sof_size(path: Path, width: int, height: int) -> None:
    from builder.ingest.scrub import segments

    data = bytearray(path.read_bytes())
    sof = next(s for s in segments(bytes(data)) if s.name.startswith("SOF"))
    data[sof.start + 5 : sof.start + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_a_good_release_passes(release: tuple[Path, BuildReport]) -> None:
    path, report = release
    assert audit_release(path, report) == []


def _exif(path: Path) -> None:
    exif = Image.Exif()
    exif[0x8825] = {2: (52.0, 7.0, 30.0)}  # GPSInfo latitude
    with Image.open(path) as image:
        image.load()
        image.save(path, format="JPEG", quality=95, exif=exif.tobytes())


def _comment(path: Path) -> None:
    data = path.read_bytes()
    comment = b"hello"
    path.write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:])


def _trailing(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"ASK123456")


def _resize(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        image.resize((256, 256)).save(path, format="JPEG", quality=95)


def _png(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        image.save(path, format="PNG")


SEEDS: dict[str, tuple[Callable[[Path, BuildReport], None], str]] = {
    "exif gps": (lambda r, _: _exif(_first_tile(r)), "APP1"),
    "comment": (lambda r, _: _comment(_first_tile(r)), "metadata in image (COM"),
    "trailing bytes": (lambda r, _: _trailing(_first_tile(r)), "bytes after EOI"),
    "wrong size": (lambda r, _: _resize(_first_tile(r)), "expected an RGB JPEG of 256x512"),
    "png in disguise": (lambda r, _: _png(_first_tile(r)), "expected an RGB JPEG of 256x512"),
    "extra column": (
        lambda r, _: _rewrite_csv(r, "train", lambda rows: [[*row, "x"] for row in rows]),
        "columns ['file_name', 'label', 'x']",
    ),
    "lat column": (
        lambda r, _: _rewrite_csv(r, "eval", lambda rows: [["file_name", "lat"], *rows[1:]]),
        "allowed: file_name,label",
    ),
    "lowercase label": (
        lambda r, _: _rewrite_csv(r, "train", lambda rows: [rows[0], [rows[1][0], "yes"], *rows[2:]]),
        "label 'yes'",
    ),
    "not listed": (
        lambda r, _: _rewrite_csv(r, "train", lambda rows: rows[:-1]),
        "not listed in metadata.csv",
    ),
    "listed twice": (lambda r, _: _rewrite_csv(r, "train", lambda rows: [*rows, rows[1]]), "listed 2 times"),
    "listed, missing": (lambda r, _: _first_tile(r).unlink(), "listed but missing"),
    "coordinates in card": (
        lambda r, _: (r / "README.md").write_text("Found at 52.12345, -1.23456\n"),
        "coordinate pair",
    ),
    "date in notice": (lambda r, _: (r / "NOTICE.md").write_text("Acquired 2021-06-14.\n"), "date-like"),
    "compact date in a name": (
        lambda r, _: (r / "data" / "train" / "metadata.csv").rename(r / "data" / "train" / "m_20210614.csv"),
        "compact date-like",
    ),
    "source id from the report": (
        lambda r, rep: (r / "NOTICE.md").write_text(f"see {rep.tiles[0].site.source_id}\n"),
        "private value of the report",
    ),
    "source file name": (
        lambda r, rep: (r / "README.md").write_text(Path(rep.tiles[1].source).stem + "\n"),
        "private value of the report",
    ),
    "product id": (
        lambda r, _: (r / "README.md").write_text("S2B_MSIL2A_x_N0509_R080_T30UXC\n"),
        "Sentinel-2 product id",
    ),
    "stray file": (lambda r, _: (r / "report.json").write_text("{}"), "report.json: not part of a release"),
    "stray split": (lambda r, _: (r / "data" / "test").mkdir(), "not a split"),
    "opaque name broken": (
        lambda r, _: _rewrite_csv(r, "eval", lambda rows: [rows[0], ["AIM0012345.jpg", "No"], *rows[2:]]),
        "is not opaque",
    ),
    "metadata field over the csv limit": (
        lambda r, _: _rewrite_csv(r, "train", lambda rows: [*rows, ["x" * 200_000, "No"]]),
        "not CSV (field larger than field limit (131072))",
    ),
    "metadata.csv not UTF-8": (
        lambda r, _: _append_bytes(r / "data" / "train" / "metadata.csv", b"d_tile_\xffbad.jpg,No\n"),
        ": not UTF-8 (byte 0xff); the loader reads the file as UTF-8",
    ),
    "a carriage return inside a metadata.csv field": (
        lambda r, _: _append_bytes(r / "data" / "eval" / "metadata.csv", b"d_tile_a\rb.jpg,No\n"),
        "not CSV (new-line character seen in unquoted field - do you need to open the file in "
        "universal-newline mode?)",
    ),
    "tile header promises 60000x60000": (
        lambda r, _: _set_sof_size(_first_tile(r), 60_000, 60_000),
        "does not decode cleanly (DecompressionBombError",
    ),
    "private value glued to letters in a name": (
        lambda r, rep: _rewrite_csv(
            r, "train", lambda rows: [*rows, [f"lat{rep.tiles[0].site.lat:.4f}.jpg", "No"]]
        ),
        "latitude/longitude label-like string lat",
    ),
    "tampered after build": (
        lambda r, _: (r / "LICENSE").write_text("MIT"),
        "differs from the file the build",
    ),
}


@pytest.mark.parametrize("case", sorted(SEEDS))
def test_seeded_finding_is_caught(case: str, release: tuple[Path, BuildReport]) -> None:
    path, report = release
    seed, expected = SEEDS[case]
    seed(path, report)
    findings = audit_release(path, report)
    assert any(expected in f for f in findings), findings


def test_right_half_published_is_caught(release: tuple[Path, BuildReport]) -> None:
    path, report = release
    tile = report.tiles[0]
    with Image.open(Path(report.corpus) / tile.source) as composite:
        right = composite.convert("RGB").crop((256, 0, 512, 512))
    target = path / "data" / tile.split / tile.file_name
    buf = io.BytesIO()
    right.save(buf, format="JPEG", quality=95, subsampling=0)
    from builder.ingest.scrub import strip_jpeg

    target.write_bytes(strip_jpeg(buf.getvalue()))
    # A build that lied: its report records the hash of what it wrote.
    files = {
        **report.files,
        f"data/{tile.split}/{tile.file_name}": hashlib.sha256(target.read_bytes()).hexdigest(),
    }
    report = replace(report, files=files, release_digest=files_digest(files))
    findings = audit_release(path, report)
    assert findings == [
        f"data/{tile.split}/{tile.file_name}: matches its composite's right (context) half, "
        "not the Sentinel-2 half"
    ]


def test_more_than_10000_files_in_a_folder(release: tuple[Path, BuildReport]) -> None:
    path, report = release
    crowded = path / "data" / "eval"
    for i in range(10_001):
        (crowded / f"x{i}").touch()
    findings = audit_release(path, report)
    assert any(
        f.startswith("data/eval/: 10010 entries") and "more than 10000 per folder" in f for f in findings
    )


def test_no_private_report_is_a_finding(release: tuple[Path, BuildReport]) -> None:
    path, _ = release
    assert audit_release(path, None) == ["no private report: cannot check hashes or which half was published"]


def test_the_real_licence_text_is_shipped(release: tuple[Path, BuildReport]) -> None:
    path, _ = release
    shared = Path(__file__).resolve().parents[2] / "shared" / "licenses" / "CDLA-Permissive-2.0.txt"
    text = (path / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("Community Data License Agreement – Permissive – Version 2.0")
    if shared.is_file():  # beside a checkout of this workplace: the text is verbatim
        assert text == shared.read_text(encoding="utf-8")
    notice = (path / "NOTICE.md").read_text(encoding="utf-8")
    assert "Contains modified Copernicus Sentinel data" in notice
    assert "Open Government Licence v3.0" in notice


def _no_value_in_full(findings: list[str], report: BuildReport) -> None:
    from builder.scan import private_values

    text = "\n".join(findings)
    for value in private_values(report.tiles):
        assert value not in text, value


def test_findings_never_print_a_private_value_glued_to_other_text(
    release: tuple[Path, BuildReport],
) -> None:
    """A private value inside a word or a longer name is masked like a whole word."""
    path, report = release
    site = next(t.site for t in report.tiles if t.site)
    lat, sid, date = f"{site.lat:.4f}", site.source_id, site.date
    _rewrite_csv(path, "train", lambda rows: [*rows, [f"lat{lat}.jpg", "No"], [f"id{sid}x.jpg", "Yes"]])
    (path / f"notes_{sid}x.txt").write_text("x\n")
    with (path / "README.md").open("a") as handle:
        handle.write(f"\nsite lat{lat} id{sid}x on{date}x\n")
    findings = audit_release(path, report)
    assert any("notes_" in f and "private value of the report" in f for f in findings), findings
    assert any(f.startswith("README.md:") and "private value of the report" in f for f in findings), findings
    for value in (lat, sid, date):
        assert value not in "\n".join(findings), value
    _no_value_in_full(findings, report)


def test_a_fifo_in_the_release_is_a_finding_not_a_hang(release: tuple[Path, BuildReport]) -> None:
    path, report = release
    (path / "NOTICE.md").unlink()
    os.mkfifo(path / "NOTICE.md")
    findings: list[str] = []
    worker = threading.Thread(target=lambda: findings.extend(audit_release(path, report)), daemon=True)
    worker.start()
    worker.join(300)  # a hang guard only: a blocking read of the FIFO would never return
    assert not worker.is_alive(), "the audit blocked on a FIFO"
    assert any(f.startswith("NOTICE.md: a special file") for f in findings), findings
    assert any(f.startswith("NOTICE.md: differs from the file the build") for f in findings), findings


def test_a_release_folder_that_is_a_symlink_is_refused(
    release: tuple[Path, BuildReport], tmp_path: Path
) -> None:
    path, report = release
    link = tmp_path / "linked"
    link.symlink_to(path)
    assert audit_release(link, report) == ["linked: a symbolic link; a release is a folder of regular files"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds a JSON list; expected a private report"),
        ('{"tiles": [{"split": "train"}], "files": {}}', "tile 0 has no text field 'file_name'"),
        ('{"files": {}}', "no list of tiles"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_cli_audit_with_a_broken_report_is_one_line(
    content: str,
    message: str,
    release: tuple[Path, BuildReport],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from builder.cli import main

    path, _ = release
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["audit", str(path), "--report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("51,5074", "decimal-comma decimal"),
        ("\uff15\uff11.\uff15\uff10\uff17\uff14, -0.1278", "coordinate pair"),  # fullwidth digits
        ("\u0665\u0661\u066b\u0665\u0660\u0667\u0664", "high-precision decimal"),  # Arabic-Indic
        ("41d16m24s", "degrees, minutes, seconds"),
        ("lat41.2733", "latitude/longitude label"),
        ("sr6x5vzkh", "geohash"),
        ("JN61fw", "Maidenhead locator"),
        ("tq 300 804", "British National Grid reference"),
        ("t33tvf", "MGRS reference"),
        ("2025-W24", "week or ordinal date"),
        ("2025-165", "week or ordinal date"),
        ("June 2025", "date with a month name"),
        ("27 luglio 2019", "date with a month name in another language"),
        ("27. Juli 2019", "date with a month name in another language"),
        ("1er août 2019", "date with a month name in another language"),
        ("27 de julio de 2019", "date with a month name in another language"),
        ("Juillet 2019", "date with a month name in another language"),
        ("2019年7月27日", "CJK date"),
        ("２０１９年７月", "CJK date"),  # fullwidth digits
        ("2019년 7월 27일", "CJK date"),
        ("06/2025", "month and year"),
        ("14-06-25", "date"),
        ("2021-\u200b06-14", "date"),  # a zero-width space inside
        ("&#50;&#48;&#50;&#49;-06-14", "date"),  # HTML entities
        ("&amp;#50;021-06-14", "date"),  # entities escaped twice
        ("51.50_74, -0.12_78", "coordinate pair"),  # digit grouping
    ],
)
def test_the_scanner_reads_every_spelling(text: str, label: str) -> None:
    from builder.scan import text_findings

    findings = list(text_findings("README.md", f"flown {text} here", ()))
    assert any(f"{label}-like string" in f for f in findings), findings


def test_every_example_of_the_readmes_pattern_table_is_found_under_its_name() -> None:
    """The README's table of what the scanner finds is a promise: each example is a finding of
    the row's pattern (a row may name two, or a variant: "British National Grid, lower case")."""
    from builder.scan import PATTERNS, text_findings

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("| pattern | examples |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    assert len(rows) >= 20
    named = set()
    for cell, examples in rows:
        cell = cell.strip()
        for example in re.findall(r"`([^`]+)`", examples):
            labels = {f.split(": ", 1)[1].split("-like string")[0] for f in text_findings("R", example, ())}
            assert any(label in cell or label.startswith(cell.split(",")[0]) for label in labels), (
                cell,
                example,
                labels,
            )
            named |= {label for label in labels if label in cell or label.startswith(cell.split(",")[0])}
    assert named == set(PATTERNS)  # every pattern has an example in the table


def test_the_scanner_reads_long_runs_of_whitespace_as_one_space() -> None:
    """The input is bounded, not the time: a run of spaces is one space before any pattern runs,
    so no pattern backtracks over it (the coordinate-pair pattern was quadratic in such runs)."""
    from builder.scan import PATTERNS, normalise, text_findings

    assert normalise("1.123" + " " * 100_000 + "x") == "1.123 x"
    assert normalise("51.5074" + "\t " * 50_000 + "-0.1278") == "51.5074 -0.1278"
    findings = list(text_findings("R", "51.5074" + " " * 100_000 + "-0.1278", ()))
    assert any("coordinate pair" in f for f in findings)
    for label, pattern in PATTERNS.items():  # no pattern needs more than one space between parts
        assert "\\s" not in pattern.pattern, label


def test_ordinary_card_text_is_not_refused() -> None:
    """What a card says of itself: counts, versions, sizes, ranges, the layouts' own names."""
    from builder.scan import text_findings

    clean = [
        "Contains modified Copernicus Sentinel data 2017-2024.",
        "1,138 train and 157 eval SFT rows; 10,000 files per folder; 26.5 MiB",
        "torch 2.14.1, datasets 5.2.0, version 1.0.0, LFM2.5-VL-450M",
        "RGB = B08/B04/B05, 256 x 512 pixels, 512x512 composites, q95 4:4:4",
        "data/train-00000-of-00001.parquet, shards/shard-00000.h5, images/s00000/",
        "gate 2: cloud <= 30 %, NDVI > 0.1, 2-98 % stretch, 10 m pixels, 2,560 m",
        "d_tile_abcdefghijkl.jpg, sha256, s2cloudless, image-classification",
    ]
    for line in clean:
        assert list(text_findings("README.md", line, ())) == [], line


def test_private_value_findings_come_in_the_same_order_in_every_run() -> None:
    """A set of strings iterates in an order that changes with the hash seed of the run: the
    findings of several private values in one line came out in that order, so two audits of
    the same release printed different lists."""
    import subprocess
    import sys

    code = (
        "from builder.scan import text_findings\n"
        "secrets = {f'TAV{n:04d}' for n in range(40)} | {'41.27331', 'site_alpha'}\n"
        "line = ' '.join(sorted(secrets, reverse=True))\n"
        "print('\\n'.join(text_findings('README.md', line, secrets)))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    ]
    assert runs[0].count("private value of the report") == 42, runs[0]
    assert runs[0] == runs[1] == runs[2]


def test_redact_masks_a_private_value_anywhere() -> None:
    from builder.scan import redact

    (shown,) = redact(["data/x: name lat41.2733x.jpg and idTAV0263y"], {"41.2733", "TAV0263"})
    assert "41.2733" not in shown and "TAV0263" not in shown
    assert "41.2…" in shown and "TAV0…" in shown


def test_what_a_worker_found_refuses_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build keeps only the findings of the workers' per-tile checks (the rest is the
    report's file digests, audit.WorkerChecks), and a finding there still refuses the release."""
    from builder.errors import AuditError
    from builder.release import tile
    from builder.release.build import BuildConfig, build
    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    planted = iter(["planted finding"])

    def one_finding(pixels: object, composite: object, where: str) -> Iterator[str]:
        yield from (f"{where}: {text}" for text in planted)  # the first tile checked only

    monkeypatch.setattr(tile.audit, "half_findings", one_finding)
    with pytest.raises(AuditError) as refused:
        build(BuildConfig(corpus, tmp_path / "out", "1.0.0", workers=1))
    assert re.fullmatch(
        r"data/(train|eval)/d_tile_[a-p]{12}\.jpg: planted finding", refused.value.findings[0]
    )
    assert len(refused.value.findings) == 1


def test_worker_checks_stand_for_the_tiles_the_report_lists() -> None:
    from builder.release.audit import WorkerChecks

    tile = "data/train/d_tile_abcdefghijkl.jpg"
    sharded = "data/eval/0001/d_tile_bcdefghijklm.jpg"
    digests = {"README.md": "r" * 64, tile: "a" * 64, sharded: "b" * 64, "data/train/metadata.csv": "m" * 64}
    checks = WorkerChecks(digests, {sharded: ("x: finding",)})
    assert checks[tile] == ("a" * 64, ())
    assert checks.get(sharded) == ("b" * 64, ("x: finding",))
    assert sorted(checks) == sorted([tile, sharded]) and len(checks) == 2
    assert checks.get("README.md") is None and checks.get("data/train/metadata.csv") is None
    assert checks.get("data/train/d_tile_zzzzzzzzzzzz.jpg") is None


def test_a_finding_is_one_line_whatever_the_release_quotes(release: tuple[Path, BuildReport]) -> None:
    """A name in metadata.csv with a newline, a terminal escape and a bidirectional override is
    quoted escaped: the finding can neither print a line of its own nor drive the terminal."""
    path, report = release
    name = "d_tile_x\naudit passed\x1b[2K\u202e.jpg"
    _rewrite_csv(path, "train", lambda rows: [*rows, [name, "No"]])
    findings = audit_release(path, report)
    assert any("d_tile_x\\naudit passed\\x1b[2K\\u202e.jpg" in f for f in findings), findings
    assert all(f.isprintable() for f in findings), findings


@pytest.mark.parametrize("broken", ["bad header", "over the csv limit", "missing"])
def test_an_unreadable_metadata_csv_is_one_finding_not_one_per_tile(
    release: tuple[Path, BuildReport], broken: str
) -> None:
    """When a split's metadata.csv cannot be read, its own finding says so; its tiles are not
    each listed as unpublished (they are there), and the other split is audited as usual."""
    path, report = release
    meta = path / "data" / "train" / "metadata.csv"
    if broken == "bad header":
        meta.write_text("name,answer\n")
    elif broken == "over the csv limit":
        _rewrite_csv(path, "train", lambda rows: [rows[0], ["x" * 200_000, "No"], *rows[1:]])
    else:
        meta.unlink()
    findings = audit_release(path, report)
    assert not any("in the private report but not published" in f for f in findings), findings
    assert any(f.startswith("data/train/metadata.csv: ") for f in findings), findings
    eval_tile = next(t for t in report.tiles if t.split == "eval")
    (path / "data" / "eval" / eval_tile.file_name).unlink()
    findings = audit_release(path, report)
    assert f"data/eval/{eval_tile.file_name}: in the private report but not published" in findings


def test_a_name_too_long_to_look_up_is_a_finding_not_an_error(release: tuple[Path, BuildReport]) -> None:
    """A metadata.csv row naming a file longer than the system can look up is refused as listed
    but missing (one short finding), not an error that stops the audit."""
    path, report = release
    _rewrite_csv(path, "train", lambda rows: [*rows, ["C" * 5000 + ".jpg", "No"]])
    findings = audit_release(path, report)
    assert any(f.endswith(": listed but missing") and len(f) < 200 for f in findings), findings


def test_the_tree_walk_is_sorted_rglob_without_holding_it(tmp_path: Path) -> None:
    """``files.tree`` (the build's file digests, the card's fingerprint, the recovery digest)
    lists what ``sorted(rglob("*"))`` lists, in that order (part by part: ``a/x`` before ``a-b``,
    upper case first), a symbolic link to a folder listed but not followed; and the crowded-folder
    check walks the same way."""
    from builder import files

    (tmp_path / "a" / "Z").mkdir(parents=True)
    (tmp_path / "a-b").mkdir()
    (tmp_path / "a" / "x").write_text("1")
    (tmp_path / "A").write_text("2")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    for i in range(12):
        (tmp_path / "a-b" / f"f{i}").touch()
    expected = [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))]
    assert [rel for rel, _, _ in files.tree(tmp_path)] == expected == [
        "A", "a", "a/Z", "a/x", "a-b", *sorted(f"a-b/f{i}" for i in range(12)), "link"
    ]  # fmt: skip
    assert [rel for rel, _, folder in files.tree(tmp_path) if folder] == ["a", "a/Z", "a-b"]
    limit = files.MAX_FILES_PER_FOLDER
    try:
        files.MAX_FILES_PER_FOLDER = 3
        assert list(files.crowded_folders(tmp_path)) == [
            "./: 4 entries; the Hub refuses more than 3 per folder",
            "a-b/: 12 entries; the Hub refuses more than 3 per folder",
        ]
    finally:
        files.MAX_FILES_PER_FOLDER = limit


def test_a_folder_the_walk_cannot_list_is_an_error_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.walk`` skips a folder it cannot list unless told otherwise: the crowded-folder check
    (the only walk of a sibling layout's audit that lists every folder) would then pass a
    release with an unreadable folder in it. (Tests run as root, where chmod 000 does not stop
    a listing: the denial is made by hand.)"""
    from builder import files

    (tmp_path / "data" / "hidden").mkdir(parents=True)
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path).endswith("hidden"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(PermissionError):
        list(files.crowded_folders(tmp_path))
    with pytest.raises(PermissionError):
        list(files.tree(tmp_path))
    # The release audit's own walk (its layout and text checks) too: its text check would
    # otherwise never read a file in that folder.
    with pytest.raises(PermissionError):
        list(audit._check_text(tmp_path, set(), frozenset()))
