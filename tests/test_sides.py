"""Side rasters of a composite (bands, cloud mask, land cover): overlap, no-data, conflicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from builder.cli import main
from builder.quality import gates
from builder.quality.thresholds import GateConfig
from builder.raster import bands as raster
from builder.raster.bands import RasterError
from builder.release.build import BuildConfig, build
from builder.testing.sample import s2_reflectance
from tests.data.factory import TinyCorpus

UTM33 = "EPSG:32633"
ORIGIN = (500_000.0, 5_000_000.0)


def write_raster(
    path: Path,
    values: np.ndarray,
    *,
    origin: tuple[float, float] = ORIGIN,
    res: float = 10.0,
    nodata: float | None = None,
    names: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
) -> Path:
    stack = values if values.ndim == 3 else values[np.newaxis]
    profile = {
        "driver": "GTiff",
        "width": stack.shape[2],
        "height": stack.shape[1],
        "count": stack.shape[0],
        "dtype": stack.dtype,
        "crs": UTM33,
        "transform": from_origin(*origin, res, res),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(stack)
        for i, name in enumerate(names, 1):
            dst.set_band_description(i, name)
        dst.update_tags(**(tags or {}))
    return path


def write_l2a_without_scl(path: Path, seed: int = 0) -> Path:
    """Farmland reflectance (B02 B03 B04 B05 B08, 256x512 px) as L2A DNs with their offset, no SCL."""
    reflectance, _ = s2_reflectance(np.random.default_rng(seed), "No")
    nir, red, edge = (reflectance[..., i] for i in range(3))
    bands = {"B02": red * 0.75 + 0.01, "B03": red * 1.25 + 0.015, "B04": red, "B05": edge, "B08": nir}
    dn = np.stack([np.clip(np.round(b * 10_000) + 1000, 1, 65535) for b in bands.values()]).astype(np.uint16)
    tags = {"PROCESSING_LEVEL": "Level-2A", "BOA_ADD_OFFSET": "-1000"}
    return write_raster(path, dn, names=tuple(bands), tags=tags)


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return write_l2a_without_scl(tmp_path / "scene.tif")


def test_a_mask_of_another_place_is_refused_not_read_as_clear(scene: Path, tmp_path: Path) -> None:
    bands = raster.read_bands(scene)
    away = write_raster(
        tmp_path / "away.tif", np.zeros((512, 256), np.uint8), origin=(510_000.0, 5_000_000.0)
    )
    with pytest.raises(
        RasterError,
        match=r"the cloud mask has no valid pixel over the scene \(it does not overlap the scene, or holds "
        r"only its no-data value there\): 0% of the window",
    ):
        raster.read_side(away, "cloud mask", bands, 0.9)
    half = write_raster(
        tmp_path / "half.tif", np.zeros((512, 256), np.uint8), origin=(501_280.0, 5_000_000.0)
    )
    with pytest.raises(
        RasterError, match=r"covers only part of the scene: 50% of the window .* at least 90%"
    ):
        raster.read_side(half, "cloud mask", bands, 0.9)
    assert raster.read_side(half, "cloud mask", bands, 0.5).count() == 256 * 512 // 2


def test_declared_no_data_of_a_side_raster_is_not_counted(scene: Path, tmp_path: Path) -> None:
    bands = raster.read_bands(scene)
    cover = np.full((512, 256), 40, np.uint8)
    cover[:100] = 255  # the map's declared no-data
    path = write_raster(tmp_path / "lc.tif", cover, nodata=255)
    read = raster.read_side(path, "land-cover raster", bands, 0.5)
    assert read.count() == 412 * 256 and set(np.unique(read.compressed())) == {40}
    with pytest.raises(RasterError, match=r"80\.4% of the window has valid pixels, at least 90% needed"):
        raster.read_side(path, "land-cover raster", bands, 0.9)


def test_declared_no_data_of_the_bands_is_no_data(tmp_path: Path) -> None:
    path = write_l2a_without_scl(tmp_path / "s.tif")
    with rasterio.open(path, "r+") as dst:
        dst.nodata = 65535
        data = dst.read()
        data[:, :10] = 65535
        dst.write(data)
    bands = raster.read_bands(path)
    assert np.isnan(bands["B04"][:10]).all() and np.isfinite(bands["B04"][10:]).all()
    floats = {b: np.full((64, 64), 0.2, np.float32) for b in ("B04", "B05", "B08")}
    for values in floats.values():
        values[0] = -9999
    path = write_raster(
        tmp_path / "f.tif", np.stack(list(floats.values())), names=tuple(floats), nodata=-9999
    )
    assert np.isnan(raster.read_bands(path)["B08"][0]).all()


def test_composite_refuses_an_off_scene_mask_in_one_line(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    away = write_raster(
        tmp_path / "away.tif", np.zeros((512, 256), np.uint8), origin=(490_000.0, 5_010_000.0)
    )
    out = tmp_path / "tile.jpg"
    assert main(["composite", str(scene), "--out", str(out), "--cloud-mask", str(away)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not overlap the scene" in err and str(away) in err
    assert not out.exists()
    clear = write_raster(tmp_path / "clear.tif", np.zeros((512, 256), np.uint8))
    assert main(["composite", str(scene), "--out", str(out), "--cloud-mask", str(clear)]) == 0
    assert "gate s2_not_cloudy      pass" in capsys.readouterr().out


def _corpus_with_side_files(root: Path) -> tuple[TinyCorpus, str]:
    corpus = TinyCorpus(root, train=3, eval_=2)
    stem = "site_train_0"
    write_l2a_without_scl(root / "bands" / f"{stem}.tif")
    return corpus, stem


def test_build_uses_clouds_beside_bands_and_rejects_side_rasters_that_do_not_fit(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    corpus, stem = _corpus_with_side_files(root)
    # Without SCL or mask the five bands leave cloud unknown: gate 2 is not evaluated.
    report = build(BuildConfig(corpus.write(), tmp_path / "a", "1.0.0")).report
    tile = next(t for t in report.tiles if t.source == f"composites/{stem}.jpg")
    assert tile.gates[1]["evaluated"] is False and "cloud cover not measured" in tile.gates[1]["reason"]
    # A cloud mask beside the bands measures it (here: a cloud over the top 40 %).
    mask = np.zeros((512, 256), np.uint8)
    mask[:205] = 1
    write_raster(root / "clouds" / f"{stem}.tif", mask)
    report = build(BuildConfig(root, tmp_path / "b", "1.0.0")).report
    cloudy = next(r for r in report.rejections if r.where == f"composites/{stem}.jpg")
    assert cloudy.reason == "gate_s2_cloudy" and "(cloud mask)" in cloudy.detail
    # A mask of another place is a counted rejection with its reason, not "0 % cloud".
    write_raster(
        root / "clouds" / f"{stem}.tif", np.zeros((512, 256), np.uint8), origin=(520_000.0, 5_000_000.0)
    )
    report = build(BuildConfig(root, tmp_path / "c", "1.0.0")).report
    off = next(r for r in report.rejections if r.where == f"composites/{stem}.jpg")
    assert off.reason == "bad_side_raster" and "does not overlap the scene" in off.detail
    assert report.counts.rejected["bad_side_raster"] == {"train": 1, "eval": 0}
    # The documented minimum share comes from gates.json like every threshold.
    (root / "clouds" / f"{stem}.tif").unlink()
    cover = np.full((512, 256), 40, np.uint8)
    cover[:300] = 0  # no data in the land-cover convention: 41 % of the window is valid
    write_raster(root / "landcover" / f"{stem}.tif", cover, nodata=0)
    report = build(BuildConfig(root, tmp_path / "d", "1.0.0")).report
    assert any(r.reason == "bad_side_raster" and "41.4% of the window" in r.detail for r in report.rejections)
    (root / "gates.json").write_text(json.dumps({"min_side_coverage": 0.4}))
    report = build(BuildConfig(root, tmp_path / "e", "1.0.0")).report
    tile = next(t for t in report.tiles if t.source == f"composites/{stem}.jpg")
    assert tile.gates[3]["values"]["cropland_fraction"] == 1.0 and tile.gates[3]["passed"]


def test_implausible_bands_are_a_counted_rejection_in_the_build(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    corpus = TinyCorpus(root, train=3, eval_=2)
    dn = np.full((5, 512, 256), 300, np.uint16)  # red 0.03 already harmonised, still tagged -1000
    write_raster(
        root / "bands" / "site_train_1.tif",
        dn,
        names=("B02", "B03", "B04", "B05", "B08"),
        tags={"BOA_ADD_OFFSET": "-1000"},
    )
    write_raster(
        root / "bands" / "site_train_2.tif",
        dn[:, :40, :40],
        names=("B02", "B03", "B04", "B05", "B08"),
        tags={"BOA_ADD_OFFSET": "0"},
    )
    report = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0")).report
    bad = {r.where: r.detail for r in report.rejections if r.reason == "bad_bands"}
    assert "offset applied twice" in bad["composites/site_train_1.jpg"]
    assert "window 40x40 px is smaller than the minimum 64x64 px" in bad["composites/site_train_2.jpg"]


def test_a_land_cover_of_class_0_is_no_data_not_zero_cropland(scene: Path, tmp_path: Path) -> None:
    """Class 0 is "no data" in WorldCover and eo-learn's LULC: a map of zeros without a declared
    no-data value covers nothing, so it is refused by the coverage rule (in the build: a counted
    bad_side_raster), never measured as "0 % cropland"."""
    bands = raster.read_bands(scene)
    zeros = write_raster(tmp_path / "zeros.tif", np.zeros((512, 256), np.uint8))
    with pytest.raises(
        RasterError, match=r"holds only its no-data value or class 0 there\): 0% of the window"
    ):
        raster.read_side(zeros, "land-cover raster", bands, 0.9, raster.LANDCOVER_NODATA)
    assert raster.read_side(zeros, "cloud mask", bands, 0.9).count() == 512 * 256  # 0 is "clear" there
    # With the coverage rule switched off, the gate still measures nothing from it: green-edge decides.
    read = raster.read_side(zeros, "land-cover raster", bands, 0.0, raster.LANDCOVER_NODATA)
    result = gates.agricultural(bands, GateConfig(), read)
    assert result.values["method"] == "green-edge density" and result.evaluated
    assert gates.agricultural(None, GateConfig(), read).evaluated is False
    root = tmp_path / "corpus"
    corpus, stem = _corpus_with_side_files(root)
    write_raster(root / "landcover" / f"{stem}.tif", np.zeros((512, 256), np.uint8))
    report = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0")).report
    bad = next(r for r in report.rejections if r.where == f"composites/{stem}.jpg")
    assert bad.reason == "bad_side_raster" and "or class 0 there" in bad.detail
    # The card's gate counts are over the tiles the gates ran on: this one was cut, never gated.
    gated = sum(report.counts.tiles.values()) + sum(
        sum(per_split.values())
        for reason, per_split in report.counts.rejected.items()
        if reason.startswith("gate_")
    )
    assert report.gates.tiles == gated
    card = (tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0" / "README.md").read_text()
    assert f"Counts are over the {gated} tiles the gates ran on" in card


def test_a_side_raster_of_complex_values_is_refused(scene: Path, tmp_path: Path) -> None:
    bands = raster.read_bands(scene)
    path = write_raster(tmp_path / "c.tif", np.full((512, 256), 40, np.complex64))
    with pytest.raises(RasterError, match="holds complex64 values; it must hold integer classes"):
        raster.read_side(path, "land-cover raster", bands, 0.9)


@pytest.mark.parametrize(
    ("tags", "option", "message"),
    [
        (
            {"BOA_ADD_OFFSET": "1e300"},
            None,
            "BOA_ADD_OFFSET='1e300' is not a whole number from -10000 to 10000",
        ),
        ({"BOA_ADD_OFFSET": "inf"}, None, "BOA_ADD_OFFSET='inf' is not a whole number"),
        ({"RADIO_ADD_OFFSET": "-1000.5"}, None, "RADIO_ADD_OFFSET='-1000.5' is not a whole number"),
        ({"PROCESSING_BASELINE": "nan"}, None, "PROCESSING_BASELINE='nan' is not a number"),
        (
            {"BOA_ADD_OFFSET": "0"},
            str(10**30),
            "offset 1000000000000000000000000000000: a Sentinel-2 DN offset",
        ),
    ],
)
def test_an_offset_sentinel2_cannot_have_is_one_line(
    tags: dict[str, str],
    option: str | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A tag of 1e300 or inf once made every value no data (and the tile "published") or an
    OverflowError traceback; NaN as a processing baseline read as "before 04.00"."""
    dn = np.full((5, 64, 64), 3000, np.uint16)
    path = write_raster(tmp_path / "s.tif", dn, names=("B02", "B03", "B04", "B05", "B08"), tags=tags)
    out = tmp_path / "t.jpg"
    extra = ["--boa-offset", option] if option is not None else []
    assert main(["composite", str(path), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not out.exists()


def test_bounds_smaller_than_a_pixel_say_so(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.jpg"
    left, top = ORIGIN
    args = ["composite", str(scene), "--out", str(out), "--allow-small-window", "--bounds"]
    assert main([*args, str(left), str(top - 0.5), str(left + 0.4), str(top)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "less than one 10-unit pixel across" in err and "outside" not in err
    assert main([*args, str(left), str(top - 10), str(left + 10), str(top)]) == 0  # one pixel, allowed


@pytest.mark.parametrize(("shift_px", "refused"), [(25, False), (26, True)])
def test_a_mask_just_under_the_minimum_share_is_refused_and_says_by_how_much(
    shift_px: int, refused: bool, scene: Path, tmp_path: Path
) -> None:
    """256 px wide: shifted 25 px the mask covers 90.2 % (kept), 26 px 89.8 % (refused); the
    message once read "90% of the window has valid pixels, at least 90% needed"."""
    bands = raster.read_bands(scene)
    left, top = ORIGIN
    mask = write_raster(
        tmp_path / "m.tif", np.zeros((512, 256), np.uint8), origin=(left + 10 * shift_px, top)
    )
    if not refused:
        assert raster.read_side(mask, "cloud mask", bands, 0.9).count() == 512 * (256 - shift_px)
        return
    with pytest.raises(RasterError, match=r": 89\.8% of the window has valid pixels, at least 90% needed"):
        raster.read_side(mask, "cloud mask", bands, 0.9)
    with pytest.raises(RasterError, match=r"at least 89\.85% needed"):
        raster.read_side(mask, "cloud mask", bands, 0.8985)
