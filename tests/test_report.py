"""The typed build report: report.json is read back to the same bytes; a malformed one is one line."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.cli import main
from builder.errors import ConfigError
from builder.release.audit import load_report
from builder.release.build import BuildConfig, build
from builder.release.report import BuildReport, ReportError
from tests.data.factory import TinyCorpus


def _report_json(release: Path) -> bytes:
    return (release.with_name(release.name + ".private") / "report.json").read_bytes()


def test_a_real_report_reads_back_to_the_same_bytes(small_release: Path) -> None:
    raw = _report_json(small_release)
    report = BuildReport.from_json(raw)
    assert report.to_json() == raw
    assert load_report(small_release.with_name("1.0.0.private") / "report.json").to_json() == raw
    # Every part is read as its type, not left as JSON.
    assert report.tiles and all(t.site is None or t.site.source_id for t in report.tiles)
    assert report.audit is not None and report.audit.passed and report.audit.findings == ()
    assert set(report.gates.per_gate) == {
        "s2_not_blank",
        "s2_not_cloudy",
        "context_available",
        "agricultural",
    }
    assert report.halves is not None and report.site_leakage is not None and report.policy is not None
    assert report.total_tiles == sum(report.counts.tiles.values()) == len(report.tiles)


@pytest.mark.parametrize("chunk", [1, 4096, 1 << 20])
def test_the_streamed_report_is_to_json_bytes(
    small_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """``write_json`` (what the build writes, record by record) gives ``to_json``'s bytes and
    their SHA-256, with tiles and without, in chunks of any size."""
    from dataclasses import replace

    from builder.release import report as report_module

    monkeypatch.setattr(report_module, "_WRITE_CHUNK", chunk)
    report = BuildReport.from_json(_report_json(small_release))
    for case in (report, replace(report, tiles=()), replace(report, tiles=report.tiles[:1])):
        target = tmp_path / "report.json"
        digest = case.write_json(target)
        assert target.read_bytes() == case.to_json()
        assert digest == hashlib.sha256(case.to_json()).hexdigest()
    assert '"tiles": []' in replace(report, tiles=()).to_json().decode()


def test_the_build_returns_the_report_it_wrote(tmp_path: Path) -> None:
    """A sibling layout's report (its layout summary, its own files) reads back too."""
    corpus = TinyCorpus(tmp_path / "corpus").write()
    result = build(BuildConfig(corpus, tmp_path / "out", "1.0.0", layout="parquet"))
    raw = _report_json(result.release)
    assert result.report.to_json() == raw
    again = BuildReport.from_json(raw)
    assert again.to_json() == raw
    assert again.layout == "parquet" and again.layout_summary is not None
    assert again.files == result.report.files and again.release_digest == result.report.release_digest


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda report: report.pop(key)


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(report: dict[str, Any]) -> None:
        inner: Any = report
        for step in path[:-1]:
            inner = inner[step]
        inner[path[-1]] = value

    return change


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no counts": (_drop("counts"), "the report has no field 'counts'"),
    "a count as text": (
        _set(("counts", "tiles", "train"), "12"),
        "counts field 'tiles' holds a value that is not a count",
    ),
    "a negative count": (
        _set(("gates", "agricultural", "passed"), -1),
        "gate agricultural field 'passed' is not a count",
    ),
    "a gate missing": (_set(("gates", "agricultural"), None), "gate agricultural is not an object"),
    "a label": (_set(("tiles", 0, "label"), "Maybe"), "tile 0 has no label Yes or No"),
    "a split": (_set(("tiles", 0, "split"), "test"), "tile 0 names no split (train or eval)"),
    "a cut": (_set(("tiles", 0, "cut"), "sliced"), "tile 0 field 'cut' is neither lossless nor reencoded"),
    "a reason": (_set(("rejections", 0, "reason"), "bored"), "rejection 0 names an unknown reason"),
    "a leak pair": (_set(("leakage", "pairs"), [7]), "leakage pair is not an object"),
    "a site flag": (
        _set(("site_leakage", "evaluated"), "yes"),
        "site_leakage field 'evaluated' is not true or false",
    ),
    "an audit": (_set(("audit", "findings"), "none"), "audit field 'findings' is not a list"),
    "a site": (_set(("tiles", 0, "site"), {"lat": "north"}), "tile 0 has a malformed site"),
    "no tiles": (_drop("tiles"), "no list of tiles"),
    "a policy": (_set(("policy", "coordinates"), "yes"), "the report field 'policy' is not a policy"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_report_is_refused_in_one_line(
    case: str, small_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = MALFORMED[case]
    raw = _report_json(small_release)
    data = json.loads(raw)
    assert data["rejections"], "the small corpus has rejections to break"
    broken = copy.deepcopy(data)
    change(broken)
    with pytest.raises(ReportError) as caught:
        BuildReport.from_dict(broken, private=True)
    assert str(caught.value) == message
    path = tmp_path / "report.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="is not a private report of `cropmark build`: "):
        load_report(path)
    assert main(["audit", str(small_release), "--report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    sites = [t["site"] for t in data["tiles"] if t.get("site")]
    for site in sites:  # the report is private: the message never quotes one of its values
        assert site["source_id"] not in err and f"{site['lat']:.4f}" not in err


def test_a_report_that_is_not_an_object_or_not_json_is_refused() -> None:
    for raw, message in ((b"[1]", "the report is not an object"), (b"{nope", "not JSON")):
        with pytest.raises(ReportError, match=message):
            BuildReport.from_json(raw)
