"""``cropmark collect`` against a STAC API on loopback over the real eo-learn scenes.

rustac's STAC API serves one item per real scene (real dates, SCL from the real cloud mask) and
:class:`tests.stac_server.RangeServer` serves the COGs with byte ranges (``tests/stac_server.py``
says what each models). Scenes 0 and 1 are cloudy (eo-learn's reference mask: 100 % cloud), 2, 3
and 4 clear. No test talks to the internet.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.collect.remote import Remote, RemoteError, is_transient, redact
from builder.collect.run import read_journal
from tests import stac_server
from tests.stac_server import CLOUDY_SCENES, RangeServer

WINDOW_M = ("640", "1000")  # 64 x 100 px: the patch is 100 x 101 px
WINDOW_DAYS = 12
# The patch is 75 % forest (eo-learn's reference land cover): gate 4's closed-canopy measure
# rejects every window of it at the card's 50 %. The collected corpus is built with this
# gates.json so that it publishes tiles; the build states the changed threshold.
GATES = {"max_canopy": 0.9}


def _site_rows() -> list[dict[str, str]]:
    a_lon, a_lat = stac_server.lonlat_at(34, 50.5)
    b_lon, b_lat = stac_server.lonlat_at(66, 50.5)
    d_lon, d_lat = stac_server.lonlat_at(50, 50.5)
    return [
        # 2015-08-25 +- 12 days: 08-20 (cloudy, 5 days off) and 08-30 (clear, 5 days off)
        {
            "site": "alpha",
            "lat": f"{a_lat:.6f}",
            "lon": f"{a_lon:.6f}",
            "label": "Yes",
            "split": "train",
            "source_db": "Historic England AIM",
            "source_id": "AIM0000001",
            "date": "2015-08-25",
        },
        # 2015-09-05 +- 12 days: 08-30 (clear, 6 days off) and 09-09 (clear, 4 days off)
        {
            "site": "bravo",
            "lat": f"{b_lat:.6f}",
            "lon": f"{b_lon:.6f}",
            "label": "No",
            "split": "eval",
            "source_db": "Historic England AIM",
            "source_id": "AIM0000002",
            "date": "2015-09-05",
        },
        # 2015-08-05 +- 12 days: only 07-31 (cloudy)
        {
            "site": "delta",
            "lat": f"{d_lat:.6f}",
            "lon": f"{d_lon:.6f}",
            "label": "No",
            "split": "train",
            "source_db": "Historic England AIM",
            "source_id": "AIM0000004",
            "date": "2015-08-05",
        },
        # far from the patch: no item
        {
            "site": "charlie",
            "lat": "51.500000",
            "lon": "-0.100000",
            "label": "No",
            "split": "train",
            "source_db": "Historic England AIM",
            "source_id": "AIM0000003",
            "date": "2015-08-25",
        },
    ]


def write_sites(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def _no_gdal_http_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL keeps what /vsicurl/ read per URL for the life of the process: a second collection in
    this process would read the first one's bytes from memory. Each test here sees what a new
    process (a resumed collection) fetches."""
    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", "/vsicurl/http://127.0.0.1")


@dataclass
class Catalogue:
    stac: str
    files: RangeServer
    tiles: Path
    root: Path
    log: list[stac_server.Request] = field(default_factory=list)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    root = tmp_path_factory.mktemp("stac")
    files = RangeServer(root / "assets")
    with files.serve() as base:
        hrefs = [
            *stac_server.write_catalogue(root / "assets", base),
            *stac_server.write_catalogue(root / "assets", base, collection="sentinel-2-l1c", level="L1C"),
            # The scene-wide cloud cover says the opposite of the site's sky: the cloudy scenes 0 %,
            # the clear ones 60 % (a granule is 110 km wide; a site is 1 km).
            *stac_server.write_catalogue(
                root / "assets",
                base,
                collection="misleading-cover",
                scene_cloud={0: 0.0, 1: 0.0, 2: 60.0, 3: 60.0, 4: 60.0},
            ),
        ]
        tiles = stac_server.write_tiles(root / "tiles")
        with stac_server.stac_api(*hrefs) as stac:
            yield Catalogue(stac, files, tiles, root)


def _run(catalogue: Catalogue, sites: Path, out: Path, *extra: str) -> int:
    gates = out.parent / "gates.json"
    gates.write_text(json.dumps(GATES), encoding="utf-8")
    return main(
        [
            "collect",
            "--sites",
            str(sites),
            "--stac",
            catalogue.stac,
            "--out",
            str(out),
            "--window-days",
            str(WINDOW_DAYS),
            "--window-m",
            *WINDOW_M,
            "--context",
            f"xyz:{catalogue.tiles}/{{z}}/{{x}}/{{y}}.png",
            "--gates",
            str(gates),
            "--backoff",
            "0",
            *extra,
        ]
    )


def _sites_csv(corpus: Path) -> dict[str, dict[str, str]]:
    with (corpus / "sites.csv").open(encoding="utf-8") as handle:
        return {row["site"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def collected(catalogue: Catalogue, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("collected")
    sites = write_sites(work / "sites.csv", _site_rows())
    catalogue.files.clear()
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert _run(catalogue, sites, work / "corpus", "--verbose") == 0
    catalogue.log = list(catalogue.files.log)  # the requests of this run only
    return work / "corpus", out.getvalue() + err.getvalue()


def _scene(item_id: str) -> int:
    return int(item_id.split("_")[1].removeprefix("eolearn"))


def test_chooses_clear_acquisitions_never_the_cloudy_scenes(collected: tuple[Path, str]) -> None:
    corpus, printed = collected
    sites = _sites_csv(corpus)
    assert set(sites) == {"alpha", "bravo"}
    # alpha: the cloudy 2015-08-20 and the clear 2015-08-30 are both 5 days off; the clear one wins.
    assert _scene(sites["alpha"]["item_id"]) == 3 and sites["alpha"]["date"] == "2015-08-30"
    # bravo: two clear acquisitions; the closer one (2015-09-09), measured first, ends the search.
    assert _scene(sites["bravo"]["item_id"]) == 2 and sites["bravo"]["measured"] == "1"
    for row in sites.values():
        assert _scene(row["item_id"]) not in CLOUDY_SCENES
        assert float(row["window_cloud"]) == 0.0 and row["cloud_source"] == "SCL"
        assert "least cloud and shadow over the window: 0.0% (SCL)" in row["chosen_because"]
        assert row["composite"] == f"composites/{row['site']}.jpg"
    journal = read_journal(corpus)
    measured_alpha = {_scene(m["item_id"]): m["cloud"] for m in journal["alpha"]["measured"]}
    assert measured_alpha[0] == 1.0 and measured_alpha[3] == 0.0  # the cloudy scene was measured, and lost
    assert "delta: skipped (cloudy): least cloud and shadow over the window 100.0% (SCL) > 30%" in printed
    assert "charlie: skipped (no_items): no sentinel-2-l2a item over the site" in printed
    assert "skipped        cloudy" in printed and "skipped        no_items" in printed


def test_the_window_decides_not_the_scene_cloud_cover(catalogue: Catalogue, tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])
    assert _run(catalogue, sites, tmp_path / "corpus", "--collection", "misleading-cover") == 0
    chosen = _sites_csv(tmp_path / "corpus")
    assert {k: _scene(v["item_id"]) for k, v in chosen.items()} == {"alpha": 3, "bravo": 2}
    assert chosen["alpha"]["scene_cloud"] == "60"  # recorded, not used


def test_level_1c_items_are_measured_with_the_cloud_detector(catalogue: Catalogue, tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])
    assert _run(catalogue, sites, tmp_path / "corpus", "--collection", "sentinel-2-l1c") == 0
    chosen = _sites_csv(tmp_path / "corpus")
    assert {k: _scene(v["item_id"]) for k, v in chosen.items()} == {"alpha": 3, "bravo": 2}
    assert {v["cloud_source"] for v in chosen.values()} == {"s2cloudless"}
    measured = {
        _scene(m["item_id"]): m["cloud"] for m in read_journal(tmp_path / "corpus")["alpha"]["measured"]
    }
    assert measured[0] > 0.9 and measured[3] < 0.01
    import rasterio

    with rasterio.open(tmp_path / "corpus" / "bands" / "alpha.tif") as src:
        assert "B10" in src.descriptions and src.tags()["PROCESSING_LEVEL"] == "Level-1C"


def test_corpus_layout_rows_and_bands(collected: tuple[Path, str]) -> None:
    corpus, _ = collected
    train = [json.loads(line) for line in (corpus / "sft" / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (corpus / "sft" / "eval.jsonl").read_text().splitlines()]
    from builder.model.prompt import sft_row

    assert train == [sft_row("composites/alpha.jpg", "Yes")]
    assert evals == [sft_row("composites/bravo.jpg", "No")]
    with Image.open(corpus / "composites" / "alpha.jpg") as image:
        assert image.size == (512, 512) and image.mode == "RGB"
        right = np.asarray(image)[:, 256:]
    assert right.std() > 10  # the context half came from the tiles
    import rasterio

    with rasterio.open(corpus / "bands" / "alpha.tif") as src:
        assert src.descriptions == ("B02", "B03", "B04", "B05", "B08", "SCL")
        assert (src.width, src.height) == (64, 100)
        assert src.tags()["BOA_ADD_OFFSET"] == "-1000"  # from the item's raster:bands, not the COG's tags
        b04 = src.read(3)
        x, y = stac_server.eolearn.origin()
        col, row = round((src.transform.c - x) / 10), round((y - src.transform.f) / 10)
    # The window is the real scene's pixels: DN = reflectance x 10000 + 1000 at the same place.
    assert 0 <= col <= 36 and 0 <= row <= 1
    scene = stac_server.eolearn.scenes()[3]
    expected = stac_server.eolearn.dn(scene[row : row + 100, col : col + 64, 3] + 0.1)
    assert np.array_equal(b04, expected)


def test_s2_half_is_the_project_raster_path(collected: tuple[Path, str], tmp_path: Path) -> None:
    corpus, _ = collected
    assert main(["composite", str(corpus / "bands" / "bravo.tif"), "--out", str(tmp_path / "half.png")]) == 0
    with Image.open(tmp_path / "half.png") as half, Image.open(corpus / "composites" / "bravo.jpg") as comp:
        ours = np.asarray(comp)[:, :256].astype(int)
        theirs = np.asarray(half).astype(int)
    assert np.abs(ours - theirs).mean() < 2.0  # the same pixels, JPEG q95 4:4:4 apart


def test_cog_reads_are_ranged_and_only_what_is_needed(
    catalogue: Catalogue, collected: tuple[Path, str]
) -> None:
    corpus, _ = collected
    # The module fixture ran first and cleared the log before its run; other tests run after.
    log = [r for r in catalogue.log if r.path.startswith("/sentinel-2-l2a/")]
    assert log, "the collection read nothing"
    gets = [r for r in log if r.method == "GET"]
    assert all(r.range is not None and r.status == 206 for r in gets), [r for r in gets if r.range is None][
        :3
    ]
    sites = _sites_csv(corpus)
    chosen = {sites["alpha"]["item_id"], sites["bravo"]["item_id"]}
    for r in gets:
        item, band = r.path.split("/")[2], r.path.split("/")[3]
        if item not in chosen:  # an acquisition measured, not chosen: its SCL and B04's header only
            assert band in ("SCL.tif", "B04.tif"), r.path
    # GDAL reads a file's first 16 KiB (its header and tile index), then only the internal tiles
    # the window touches: fewer bytes than the file, although these test files are small.
    for item in chosen:
        for band in ("B02", "B03", "B04", "B05", "B08"):
            size = (catalogue.root / "assets" / "sentinel-2-l2a" / item / f"{band}.tif").stat().st_size
            reads = [r for r in gets if r.path.endswith(f"{item}/{band}.tif")]
            assert reads[0].range.startswith("bytes=0-")
            tiles = [r for r in reads[1:] if not r.range.startswith("bytes=0-")]
            assert tiles and sum(r.sent for r in tiles) < size


def test_corpus_builds_into_a_release_that_passes_the_audit(
    collected: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, _ = collected
    work = tmp_path / "corpus"
    shutil.copytree(corpus, work)
    assert main(["build", "--corpus", str(work), "--out", str(tmp_path / "build"), "--version", "1.0.0"]) == 0
    printed = capsys.readouterr().out
    assert "published      train 1 (No 0, Yes 1)" in printed
    assert "published      eval 1 (No 1, Yes 0)" in printed
    assert "s2_not_cloudy             2 evaluated, 2 passed" in printed
    assert "audit          passed" in printed
    release = tmp_path / "build" / "cropmark-disambiguator-s2" / "1.0.0"
    assert main(["audit", str(release)]) == 0
    report = json.loads(
        (tmp_path / "build" / "cropmark-disambiguator-s2" / "1.0.0.private" / "report.json").read_text()
    )
    assert report["gates"]["changed"] == {"max_canopy": 0.9}


def test_resume_fetches_nothing_done_and_takes_labels_from_the_site_list(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _site_rows()[:2]
    sites = write_sites(tmp_path / "sites.csv", rows)
    catalogue.files.clear()
    # The first run loses the chosen item's B08 for good (4 tries): bravo is skipped, alpha done.
    catalogue.files.fail("S2A_eolearn2_20150909_L2A/B08.tif", 503)
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    first = capsys.readouterr()
    assert "bravo: skipped (read_failed): B08 of S2A_eolearn2_20150909_L2A: " in first.err
    assert "HTTP response code: 503 after 4 tries" in first.err
    assert "skipped        read_failed         1" in first.out
    assert not (tmp_path / "corpus" / "bands" / "bravo.tif").exists()
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha"}
    alpha_bytes = (tmp_path / "corpus" / "composites" / "alpha.jpg").read_bytes()
    # The second run fetches bravo only: nothing of alpha's items is read again.
    catalogue.files.clear()
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    second = capsys.readouterr().out
    assert "(1 fetched, 1 already there)" in second
    assert not any("eolearn3" in r.path for r in catalogue.files.log)  # alpha's item
    assert (tmp_path / "corpus" / "composites" / "alpha.jpg").read_bytes() == alpha_bytes
    # A third run with a changed label fetches nothing and rewrites the rows.
    rows[0]["label"] = "No"
    write_sites(tmp_path / "sites.csv", rows)
    catalogue.files.clear()
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    assert "(0 fetched, 2 already there)" in capsys.readouterr().out
    assert catalogue.files.log == []
    assert '"text": "No"' in (tmp_path / "corpus" / "sft" / "train.jsonl").read_text()


def test_transient_failures_are_retried_and_counted(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    catalogue.files.clear()
    # Each fault lasts 0.2 s from its first request; the first retry waits 1 s (--backoff 1).
    catalogue.files.fail("S2A_eolearn3_20150830_L2A/B05.tif", 503, seconds=0.2)
    catalogue.files.fail("S2A_eolearn3_20150830_L2A/B08.tif", 429, seconds=0.2)
    assert _run(catalogue, sites, tmp_path / "corpus", "--backoff", "1") == 0
    printed = capsys.readouterr().out
    assert "(2 retried)" in printed
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha"}


def test_a_missing_scl_is_an_unusable_acquisition_not_retried(catalogue: Catalogue, tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[1:2])  # bravo: 09-09 then 08-30
    catalogue.files.clear()
    catalogue.files.fail("S2A_eolearn2_20150909_L2A/SCL.tif", 404)  # until cleared
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    assert _scene(_sites_csv(tmp_path / "corpus")["bravo"]["item_id"]) == 3
    measured = read_journal(tmp_path / "corpus")["bravo"]["measured"]
    assert measured[0]["problem"].endswith("HTTP response code: 404")  # once: no "after N tries"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "yes"}, "line 2: the label must be exactly Yes or No"),
        ({"split": "test"}, "line 2: the split must be train or eval"),
        ({"site": "../x"}, "line 2: the site name must be"),
        ({"lat": "nan"}, "line 2: the latitude is not a finite number"),
        ({"date": "2014-01-01"}, "line 2: the date is not an ISO date"),
        ({"source_db": "My notes"}, "line 2: source_db is not a source of the registry"),
    ],
)
def test_bad_site_lists_are_one_line_errors(
    catalogue: Catalogue,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    rows = _site_rows()[:1]
    rows[0].update(change)
    sites = write_sites(tmp_path / "sites.csv", rows)
    assert _run(catalogue, sites, tmp_path / "corpus") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert rows[0]["lat"] not in err  # the value is private
    assert not (tmp_path / "corpus").exists()


def test_catalogue_problems_are_one_line_errors(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    assert _run(catalogue, sites, tmp_path / "corpus", "--collection", "landsat") == 2
    err = capsys.readouterr().err
    assert (
        "the STAC API has no collection 'landsat'" in err and "sentinel-2-l2a" in err and err.count("\n") == 1
    )
    closed = stac_server._free_port()
    assert (
        main(
            [
                "collect",
                "--sites",
                str(sites),
                "--stac",
                f"http://127.0.0.1:{closed}",
                "--out",
                str(tmp_path / "corpus"),
                "--attempts",
                "2",
                "--backoff",
                "0",
                "--context",
                f"xyz:{catalogue.tiles}/{{z}}/{{x}}/{{y}}.png",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.startswith("error: cannot open the STAC API") and "after 2 tries" in err and err.count("\n") == 1
    )
    (tmp_path / "mine" / "sft").mkdir(parents=True)
    (tmp_path / "mine" / "sft" / "train.jsonl").write_text("{}\n")
    assert _run(catalogue, sites, tmp_path / "mine") == 2
    assert "holds files but no collection (.collect/)" in capsys.readouterr().err
    assert (tmp_path / "mine" / "sft" / "train.jsonl").read_text() == "{}\n"
    monkeypatch.delenv("MAPBOX_ACCESS_TOKEN", raising=False)
    assert (
        main(["collect", "--sites", str(sites), "--stac", catalogue.stac, "--out", str(tmp_path / "corpus")])
        == 2
    )
    assert "needs your Mapbox access token in MAPBOX_ACCESS_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_no_site_collected_is_an_error_and_writes_no_corpus(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[2:])  # delta (cloudy) and charlie (no item)
    assert _run(catalogue, sites, tmp_path / "corpus") == 2
    err = capsys.readouterr().err
    assert "no site could be collected (cloudy 1, no_items 1); no corpus was written" in err
    assert not (tmp_path / "corpus").exists()


@contextmanager
def _mapbox(tiles: Path, token: str, seen: list[str], status: int = 200) -> Iterator[str]:
    """A loopback stand-in for the Static Images API's bounding-box request: it checks the path and
    the token and answers a JPEG cut from the test tiles (what it models: the URL form, the token
    parameter, a JPEG reply, an error status)."""
    from builder.collect.context import XyzTiles

    source = XyzTiles(f"{tiles}/{{z}}/{{x}}/{{y}}.png")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            path, _, query = self.path.partition("?")
            prefix = "/styles/v1/mapbox/satellite-v9/static/["
            ok = path.startswith(prefix) and path.endswith("]/256x512") and query == f"access_token={token}"
            if status != 200 or not ok:
                self.send_response(status if status != 200 else 422)
                self.end_headers()
                return
            west, south, east, north = map(float, path[len(prefix) : -len("]/256x512")].split(","))
            image = source.fetch(Remote(), (west, south, east, north))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(buffer.getvalue())))
            self.end_headers()
            self.wfile.write(buffer.getvalue())

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_mapbox_provider_sends_the_documented_request_and_never_prints_the_token(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "pk.test-token-123456789"
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])
    monkeypatch.setenv("MAPBOX_ACCESS_TOKEN", token)
    seen: list[str] = []
    with _mapbox(catalogue.tiles, token, seen) as url:
        monkeypatch.setenv("CROPMARK_MAPBOX_URL", url)
        args = [
            "collect",
            "--sites",
            str(sites),
            "--stac",
            catalogue.stac,
            "--out",
            str(tmp_path / "corpus"),
            "--window-days",
            str(WINDOW_DAYS),
            "--window-m",
            *WINDOW_M,
            "--verbose",
        ]
        assert main(args) == 0
    printed = capsys.readouterr()
    assert len(seen) == 2 and token not in printed.out + printed.err
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha", "bravo"}
    assert token not in "".join(
        p.read_text(errors="replace")
        for p in (tmp_path / "corpus").rglob("*")
        if p.is_file() and p.suffix in (".csv", ".jsonl")
    )
    # A refused token: each site a counted skip whose reason holds no token.
    with _mapbox(catalogue.tiles, token, seen, status=401) as url:
        monkeypatch.setenv("CROPMARK_MAPBOX_URL", url)
        assert main([*args[:6], str(tmp_path / "other"), *args[7:]]) == 2
    err = capsys.readouterr().err
    assert "context_failed" in err and "HTTP Error 401" in err and token not in err


def test_remote_rate_limit_and_failure_reading() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    remote = Remote(attempts=3, backoff_s=0.5, max_wait_s=0.8, rate=4.0, sleep=sleep, clock=lambda: now[0])
    starts: list[float] = []
    for _ in range(5):
        remote.call("x", lambda: starts.append(now[0]))
    assert np.allclose(np.diff(starts), 0.25)  # 4 calls per second
    failures = iter([ConnectionResetError("reset"), OSError("HTTP response code: 503")])

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    waits.clear()
    assert remote.call("y", flaky) == "ok" and remote.retries == 2
    assert [w for w in waits if w > 0.25] == [0.5, 0.8]  # doubled, capped at max_wait

    class NotFound(Exception):
        status_code = 404

    def gone() -> None:
        raise NotFound("gone")

    calls = remote.calls
    with pytest.raises(RemoteError, match=r"^z: NotFound: HTTP 404: gone$"):
        remote.call("z", gone)
    assert remote.calls == calls + 1  # a permanent failure is not tried again
    assert is_transient(OSError("HTTP response code: 502")) and not is_transient(
        OSError("HTTP response code: 403")
    )
    assert redact("https://x/y?access_token=pk.abc&z=1") == "https://x/y?access_token=***&z=1"


def test_ctrl_c_keeps_what_is_done_and_the_next_run_finishes(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.collect import run

    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])
    real = run.collect_site

    def interrupted_at_bravo(*args: object, **kwargs: object) -> dict[str, object]:
        site = args[3]
        if getattr(site, "site", "") == "bravo":
            (tmp_path / "corpus" / "composites" / ".bravo.jpg.x1.tmp").write_bytes(b"half a file")
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run, "collect_site", interrupted_at_bravo)
    assert _run(catalogue, sites, tmp_path / "corpus") == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: 1 site(s) are in ") and "run the same command again" in err
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha"}
    assert (tmp_path / "corpus" / "sft" / "train.jsonl").read_text().count("\n") == 1
    monkeypatch.setattr(run, "collect_site", real)
    catalogue.files.clear()
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    assert "(1 fetched, 1 already there)" in capsys.readouterr().out
    assert not list((tmp_path / "corpus").rglob("*.tmp"))
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha", "bravo"}


def test_xyz_tiles_over_http_give_the_folder_s_context(
    catalogue: Catalogue, collected: tuple[Path, str], tmp_path: Path
) -> None:
    corpus, _ = collected
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    tiles = RangeServer(catalogue.tiles)
    with tiles.serve() as url:
        assert (
            _run(catalogue, sites, tmp_path / "corpus", "--context", f"xyz:{url}/{{z}}/{{x}}/{{y}}.png") == 0
        )
    assert tiles.log and all(r.status == 200 and r.path.endswith(".png") for r in tiles.log)
    with (
        Image.open(tmp_path / "corpus" / "composites" / "alpha.jpg") as ours,
        Image.open(corpus / "composites" / "alpha.jpg") as theirs,
    ):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_without_the_collect_extra_the_command_says_what_to_install(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    monkeypatch.setitem(sys.modules, "pystac_client", None)  # import fails as when it is not installed
    assert _run(catalogue, sites, tmp_path / "corpus") == 2
    assert "needs pystac-client, which the collect extra installs" in capsys.readouterr().err


def test_a_progress_bar_on_a_terminal_and_none_with_quiet(catalogue: Catalogue, tmp_path: Path) -> None:
    from tests.test_cli import _in_a_terminal

    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])
    args = [
        "collect",
        "--sites",
        str(sites),
        "--stac",
        catalogue.stac,
        "--window-days",
        str(WINDOW_DAYS),
        "--window-m",
        *WINDOW_M,
        "--context",
        f"xyz:{catalogue.tiles}/{{z}}/{{x}}/{{y}}.png",
        "--gates",
        str(tmp_path / "gates.json"),
    ]
    (tmp_path / "gates.json").write_text(json.dumps(GATES), encoding="utf-8")
    code, shown = _in_a_terminal([*args, "--out", "a"], tmp_path)
    assert code == 0 and "collecting: " in shown and "/2 " in shown and "site/s" in shown, shown[-300:]
    code, shown = _in_a_terminal([*args, "--out", "b", "--quiet"], tmp_path)
    assert code == 0 and shown == ""


def test_a_site_fetched_again_and_skipped_leaves_no_stale_rows(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # alpha and bravo are collected; then alpha's point moves where the catalogue has no item. Its
    # rows must go: the old composite shows the old point, and sites.csv would pair it with the new.
    rows = _site_rows()[:2]
    sites = write_sites(tmp_path / "sites.csv", rows)
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha", "bravo"}
    capsys.readouterr()
    rows[0]["lat"], rows[0]["lon"] = "51.500000", "-0.100000"
    write_sites(tmp_path / "sites.csv", rows)
    assert _run(catalogue, sites, tmp_path / "corpus") == 0
    out = capsys.readouterr().out
    assert "collected 1 site(s)" in out and "skipped        no_items            1" in out
    assert set(_sites_csv(tmp_path / "corpus")) == {"bravo"}
    assert "alpha" not in (tmp_path / "corpus" / "sft" / "train.jsonl").read_text(encoding="utf-8")


def test_a_token_in_an_xyz_url_is_never_written_or_printed(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "pk.SECRETTOKEN0123456789"
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    tiles = RangeServer(catalogue.tiles)
    with tiles.serve() as url:
        template = f"xyz:{url}/{{z}}/{{x}}/{{y}}.png?access_token={secret}"
        assert _run(catalogue, sites, tmp_path / "corpus", "--context", template, "--verbose") == 0
        tiles.fail(".png", 401)  # a revoked token: the site is skipped, and no corpus is left
        assert _run(catalogue, sites, tmp_path / "again", "--context", template, "--verbose") == 2
    said = capsys.readouterr()
    assert "skipped (context_failed)" in said.err and "HTTP Error 401" in said.err
    assert secret not in said.out + said.err
    for path in (tmp_path / "corpus").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_token_in_the_stac_url_is_not_printed(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:1])
    secret = "SECRETSTACTOKEN42"
    code = main(
        [
            "collect",
            "--sites",
            str(sites),
            "--stac",
            f"http://127.0.0.1:1/?token={secret}",  # nothing listens on port 1
            "--out",
            str(tmp_path / "corpus"),
            "--context",
            f"xyz:{catalogue.tiles}/{{z}}/{{x}}/{{y}}.png",
            "--backoff",
            "0",
            "--attempts",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot open the STAC API" in err
    assert secret not in err
    assert not (tmp_path / "corpus").exists()


def test_a_window_across_the_antimeridian_is_refused_not_a_whole_world_context() -> None:
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_transform

    from builder.collect.fetch import Grid
    from builder.collect.run import _lonlat_bounds

    crs = CRS.from_epsg(32660)  # UTM zone 60 north: Chukotka, Fiji's longitudes
    xs, ys = warp_transform("EPSG:4326", crs, [179.999], [65.0])
    grid = Grid(crs, Affine(10.0, 0.0, xs[0] - 1280, 0.0, -10.0, ys[0] + 2560), 256, 512)
    with pytest.raises(ValueError, match="antimeridian"):
        _lonlat_bounds(grid)
    west, _, east, _ = _lonlat_bounds(Grid(crs, Affine(10.0, 0.0, xs[0] - 6000, 0.0, -10.0, ys[0]), 256, 512))
    assert 0 < east - west < 0.2


def test_ctrl_c_before_any_site_is_done_leaves_no_corpus(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.collect import run

    sites = write_sites(tmp_path / "sites.csv", _site_rows()[:2])

    def interrupted(*args: object, **kwargs: object) -> dict[str, object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "collect_site", interrupted)
    assert _run(catalogue, sites, tmp_path / "corpus") == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: no site was collected; no corpus was written")
    assert not (tmp_path / "corpus").exists()


def test_a_run_without_gates_into_a_corpus_with_gates_json_gates_as_the_build_will(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first run copies gates.json (max_canopy 0.9) into the corpus; the build reads it. A second
    # run without --gates must count the gates with those thresholds, not the card's (at the card's
    # 50 % the patch's forest fails gate 4), and leave gates.json as it is.
    rows = _site_rows()[:2]
    assert _run(catalogue, write_sites(tmp_path / "sites.csv", rows[:1]), tmp_path / "corpus") == 0
    capsys.readouterr()
    sites = write_sites(tmp_path / "sites.csv", rows)
    args = ["collect", "--sites", str(sites), "--stac", catalogue.stac, "--out", str(tmp_path / "corpus")]
    args += ["--window-days", str(WINDOW_DAYS), "--window-m", *WINDOW_M, "--backoff", "0"]
    args += ["--context", f"xyz:{catalogue.tiles}/{{z}}/{{x}}/{{y}}.png"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(1 fetched, 1 already there)" in out
    assert "gate           agricultural       2 pass" in out
    assert json.loads((tmp_path / "corpus" / "gates.json").read_text(encoding="utf-8")) == GATES
    # --gates naming the corpus's own gates.json is no copy onto itself (shutil.SameFileError).
    assert main([*args, "--gates", str(tmp_path / "corpus" / "gates.json")]) == 0
    assert "(0 fetched, 2 already there)" in capsys.readouterr().out


def test_no_site_collected_into_an_earlier_corpus_says_it_is_as_it_was(
    catalogue: Catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(catalogue, write_sites(tmp_path / "sites.csv", _site_rows()[:1]), tmp_path / "corpus") == 0
    capsys.readouterr()
    sites = write_sites(tmp_path / "sites.csv", _site_rows()[2:3])  # delta: cloudy
    assert _run(catalogue, sites, tmp_path / "corpus") == 2
    err = capsys.readouterr().err
    assert f"no site could be collected (cloudy 1); {tmp_path / 'corpus'} is as it was" in err
    assert set(_sites_csv(tmp_path / "corpus")) == {"alpha"}


def test_redact_hides_a_password_in_a_url() -> None:
    said = redact("cannot open http://me:hunter2@stac.example/api?token=abc and https://u:p@x.example")
    assert "hunter2" not in said and "abc" not in said and ":p@" not in said
    assert "http://***@stac.example/api?token=***" in said
