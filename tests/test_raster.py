"""Raw bands to reflectance, indices, the composite and the four gates, on real and made scenes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from builder.cli import main
from builder.ingest.composite import encode_jpeg
from builder.quality import gates, thresholds
from builder.quality.gates import GateConfig
from builder.raster import bands as raster
from builder.raster import indices
from builder.raster.bands import Bands, RasterError, ReadInfo, read_bands
from tests.data import eolearn

UTM33 = "EPSG:32633"


def write_scene(
    path: Path,
    bands: dict[str, np.ndarray],
    *,
    crs: str | None = UTM33,
    res: float = 10.0,
    origin: tuple[float, float] = (500_000.0, 5_000_000.0),
    tags: dict[str, str] | None = None,
    describe: bool = True,
    nodata: float | None = None,
) -> Path:
    first = next(iter(bands.values()))
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": first.shape[1],
        "height": first.shape[0],
        "count": len(bands),
        "dtype": first.dtype,
    }
    if crs is not None:
        profile |= {"crs": crs, "transform": from_origin(*origin, res, res)}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        for i, (name, values) in enumerate(bands.items(), 1):
            dst.write(values, i)
            if describe:
                dst.set_band_description(i, name)
        dst.update_tags(
            **(tags if tags is not None else {"PROCESSING_BASELINE": "04.00", "PROCESSING_LEVEL": "Level-2A"})
        )
    return path


def dn_scene(n: int = 64, value: int = 3000, **extra: np.ndarray) -> dict[str, np.ndarray]:
    base = {b: np.full((n, n), value, np.uint16) for b in ("B02", "B03", "B04", "B05", "B08")}
    return {**base, **extra}


def bands_of(data: dict[str, np.ndarray], tags: dict[str, str] | None = None) -> Bands:
    shape = next(iter(data.values())).shape
    info = ReadInfo("made", "L2A", 0, "float reflectance", UTM33, shape, (), tags or {})
    return Bands(
        {k: np.asarray(v, dtype=np.uint8 if k == "SCL" else np.float32) for k, v in data.items()},
        None,
        None,
        info,
    )


# -- formulas ----------------------------------------------------------------------------------


def test_every_index_against_hand_computed_values() -> None:
    b = {
        k: np.array([v], np.float32)
        for k, v in dict(
            B02=0.05, B03=0.08, B04=0.06, B05=0.12, B06=0.25, B08=0.40, B8A=0.42, B11=0.20, B12=0.10
        ).items()
    }
    got = {k: float(v[0]) for k, v in indices.compute(b).items()}
    expected = {
        "ndvi": (0.40 - 0.06) / (0.40 + 0.06),  # 0.73913
        "ndre": (0.40 - 0.12) / (0.40 + 0.12),  # 0.53846
        "psri": (0.06 - 0.05) / 0.25,  # 0.04
        "nmdi": (0.42 - (0.20 - 0.10)) / (0.42 + (0.20 - 0.10)),  # 0.61538
        "nbr": (0.40 - 0.10) / (0.40 + 0.10),  # 0.6
        "red_green": 0.06 / 0.08,  # 0.75
    }
    assert got == pytest.approx(expected, abs=1e-6)
    assert got["ndvi"] == pytest.approx(0.73913, abs=1e-5) and got["nmdi"] == pytest.approx(0.61538, abs=1e-5)


def test_safe_division_gives_nan_without_a_warning() -> None:
    a = np.array([0.0, 1.0, np.nan, 0.2], np.float32)
    b = np.array([0.0, -1.0, 0.5, 0.0], np.float32)
    out = indices.normalized_difference(a, b)  # filterwarnings=error: any RuntimeWarning fails
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isnan(out[2]) and out[3] == pytest.approx(1.0)
    assert np.isnan(indices.psri(np.ones(1), np.ones(1), np.zeros(1))).all()
    assert indices.compute({"B08": np.ones(2)}) == {}


def test_proxies_come_from_the_composite_channels() -> None:
    rgb = np.array([[[200, 100, 50], [0, 0, 0]]], np.uint8)
    assert indices.ndvi_proxy(rgb)[0, 0] == pytest.approx(100 / 300)
    assert indices.ndre_proxy(rgb)[0, 0] == pytest.approx(150 / 250)
    assert np.isnan(indices.ndvi_proxy(rgb)[0, 1])


def test_stretch_is_2_to_98_percent_and_keeps_nodata_black() -> None:
    values = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, -1)
    values[0, 50] = np.nan
    out = raster.stretch(values)
    assert out[0, 50] == 0 and out[0, 0] == 1 and out[0, -1] == 255
    assert out[0, 2] == 1 and out[0, 98] == 255 and 100 < out[0, 51] < 160


# -- the real scenes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eolearn")
    for k in range(5):
        eolearn.write_multiband(k, root / f"scene{k}.tif")
    eolearn.write_band_folder(2, root / "scene2-bands")
    return root


@pytest.mark.parametrize("k", range(5))
def test_real_ndvi_matches_the_reference(real: Path, k: int) -> None:
    bands = read_bands(real / f"scene{k}.tif")
    assert bands.info.level == "L1C" and bands.info.offset == 0 and bands.info.crs == UTM33
    reference = eolearn.reference("NDVI")[eolearn.ORDER[k], ..., 0]
    mine = indices.ndvi(bands["B08"], bands["B04"])
    assert mine.shape == reference.shape == (101, 100)
    assert np.nanmax(np.abs(mine - reference)) < 1e-3  # uint16 DNs quantize reflectance to 1e-4


# What each gate says for each real scene, and why (see the gate reasons).
REAL_VERDICTS = {
    0: ("s2_not_cloudy", "cloud and shadow 100.0% > 30% (cloud mask)"),  # the mask covers the patch
    1: ("s2_not_cloudy", "cloud and shadow 100.0% > 30% (cloud mask)"),
    2: ("agricultural", "(forest)"),  # 75 % of the patch is forest in the reference land cover
    3: ("agricultural", "(forest)"),
    4: ("agricultural", "(forest)"),
}


@pytest.mark.parametrize("k", range(5))
def test_real_scenes_through_the_gates(real: Path, k: int) -> None:
    bands = read_bands(real / f"scene{k}.tif")
    mask = eolearn.reference("CLM")[eolearn.ORDER[k], ..., 0]
    half = raster.s2_half(raster.false_colour(bands))
    results = gates.evaluate(
        s2_jpeg_bytes=len(encode_jpeg(half)),
        s2_rgb=np.asarray(half),
        right=None,
        bands=bands,
        cloud_mask=mask,
    )
    by_gate = {r.gate: r for r in results}
    assert by_gate["s2_not_blank"].passed
    assert not by_gate["context_available"].evaluated
    gate, why = REAL_VERDICTS[k]
    assert not by_gate[gate].passed and why in by_gate[gate].reason
    if k >= 2:
        assert by_gate["s2_not_cloudy"].passed  # clear scenes: cloud mask 0 %
        assert by_gate["s2_not_cloudy"].values["cloud_source"] == "cloud mask"
    # With the reference land cover, the cropland fraction decides: 11 of 10,100 pixels.
    cover = eolearn.reference("LULC")[..., 0]
    lc = gates.agricultural(bands, GateConfig(cropland_classes=(1,)), landcover=cover)
    assert lc.values["cropland_fraction"] == pytest.approx(11 / (cover != 0).sum()) and not lc.passed


def test_real_composite_looks_like_nir_false_colour(real: Path, tmp_path: Path) -> None:
    out = tmp_path / "scene2.png"
    assert main(["composite", str(real / "scene2.tif"), "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (512, 256, 3)
    # Vegetation reflects NIR (red channel) far more than red light (green channel).
    assert image[..., 0].mean() > image[..., 1].mean() + 20


def test_per_band_files_are_warped_onto_the_10m_grid(real: Path) -> None:
    folder = read_bands(real / "scene2-bands")
    multi = read_bands(real / "scene2.tif")
    assert set(folder.info.resampled) == {"B01", "B05", "B06", "B07", "B8A", "B09", "B10", "B11", "B12"}
    assert folder["B05"].shape == multi["B05"].shape == (101, 100)
    np.testing.assert_array_equal(folder["B04"], multi["B04"])  # 10 m bands are read as they are
    assert np.nanmean(np.abs(folder["B05"] - multi["B05"])) < 0.01  # 20 m -> 10 m bilinear


def test_window_by_bounds_and_by_box_agree(real: Path) -> None:
    x, y = eolearn.origin()
    by_bounds = read_bands(real / "scene3.tif", bounds=(x + 100, y - 900, x + 800, y - 100))
    by_box = read_bands(real / "scene3.tif", box=(10, 10, 70, 80))
    assert by_bounds.info.shape == (80, 70)
    np.testing.assert_array_equal(by_bounds["B08"], by_box["B08"])


# -- offsets, SCL, levels ----------------------------------------------------------------------


def test_baseline_04_applies_the_minus_1000_offset(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "l2a.tif", dn_scene(value=2000))
    bands = read_bands(path)
    assert bands.info.offset == -1000 and bands.info.offset_from == "processing baseline 04.00"
    assert float(bands["B04"][0, 0]) == pytest.approx(0.1)


def test_offset_from_the_tag_or_the_option(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "a.tif", dn_scene(value=2000), tags={"BOA_ADD_OFFSET": "-1000"})
    assert read_bands(path).info.offset_from == "metadata BOA_ADD_OFFSET"
    old = write_scene(tmp_path / "b.tif", dn_scene(value=2000), tags={"PROCESSING_BASELINE": "03.01"})
    assert float(read_bands(old)["B04"][0, 0]) == pytest.approx(0.2)
    forced = read_bands(old, offset=-1000)
    assert forced.info.offset_from == "option" and float(forced["B04"][0, 0]) == pytest.approx(0.1)


def test_l1c_without_scl_reads_and_gates_on_reflectance(tmp_path: Path) -> None:
    tags = {"PROCESSING_LEVEL": "Level-1C", "PROCESSING_BASELINE": "02.09"}
    scene = dn_scene(value=500) | {"B08": np.full((32, 32), 3500, np.uint16)}
    bands = read_bands(write_scene(tmp_path / "l1c.tif", scene, tags=tags))
    assert (bands.info.level, bands.info.offset, "SCL" in bands) == ("L1C", 0, False)
    assert float(bands["B08"][0, 0]) == pytest.approx(0.35)
    result = gates.not_cloudy(bands)
    # Five bands: no SCL, no mask, and not the ten bands s2cloudless needs. Unknown is not a pass.
    assert not result.evaluated and result.passed is None and result.values["cloud_cover"] is None
    assert "cloud cover not measured" in result.reason and "s2cloudless needs B01, B8A, B09" in result.reason
    assert result.values["mean_ndvi"] == pytest.approx((0.35 - 0.05) / 0.40)


def test_an_unknown_offset_is_a_clear_error(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "c.tif", dn_scene(), tags={})
    with pytest.raises(RasterError, match=r"pass --boa-offset -1000 .* or --boa-offset 0"):
        read_bands(path)


def test_scl_is_resampled_nearest_only_and_makes_it_l2a(tmp_path: Path) -> None:
    folder = tmp_path / "bands"
    folder.mkdir()
    n = 64
    for band, values in dn_scene(n).items():
        res = 20.0 if band == "B05" else 10.0
        write_scene(folder / f"{band}.tif", {band: values[: int(n * 10 / res), : int(n * 10 / res)]}, res=res)
    scl = np.where(np.indices((32, 32)).sum(axis=0) % 2 == 0, 4, 9).astype(np.uint8)  # vegetation / cloud
    write_scene(folder / "SCL_20m.tif", {"SCL": scl}, res=20.0)
    bands = read_bands(folder)
    assert bands.info.level == "L2A" and "SCL" in bands.info.resampled
    assert set(np.unique(bands["SCL"])) == {4, 9}  # no interpolated classes
    cover, source = gates.cloud_cover(bands)
    assert source == "SCL" and cover == pytest.approx(0.5)


# -- bad input: one line naming the file and the fix -------------------------------------------


def _bad(tmp_path: Path, case: str) -> Path:
    n = 64
    if case == "missing band":
        scene = dn_scene(n)
        del scene["B05"]
        return write_scene(tmp_path / "x.tif", scene)
    if case == "no band descriptions":
        return write_scene(tmp_path / "x.tif", dn_scene(n), describe=False)
    if case == "wrong band count":
        folder = tmp_path / "f"
        folder.mkdir()
        for band, values in dn_scene(n).items():
            write_scene(
                folder / f"{band}.tif", {band: values, "extra": values} if band == "B05" else {band: values}
            )
        return folder
    if case in ("crs disagrees", "transform disagrees"):
        folder = tmp_path / "f"
        folder.mkdir()
        for band, values in dn_scene(n).items():
            crs = "EPSG:32632" if case == "crs disagrees" and band == "B05" else UTM33
            origin = (
                (500_500.0, 5_000_000.0)
                if case == "transform disagrees" and band == "B05"
                else (500_000.0, 5_000_000.0)
            )
            write_scene(folder / f"{band}.tif", {band: values}, crs=crs, origin=origin)
        return folder
    if case == "all no-data":
        return write_scene(tmp_path / "x.tif", dn_scene(n, value=0))
    if case == "declared no-data only":
        return write_scene(tmp_path / "x.tif", dn_scene(n, value=65535), nodata=65535)
    if case == "harmonised DNs tagged with the offset":  # red 0.03 already harmonised, tagged -1000
        return write_scene(tmp_path / "x.tif", dn_scene(n, value=300), tags={"BOA_ADD_OFFSET": "-1000"})
    if case == "float DNs":
        return write_scene(tmp_path / "x.tif", {b: np.full((n, n), 2500.0, np.float32) for b in dn_scene(n)})
    if case == "DNs scaled wrong":  # reflectance x 65535 instead of x 10000, no offset
        return write_scene(tmp_path / "x.tif", dn_scene(n, value=30000), tags={"BOA_ADD_OFFSET": "0"})
    if case == "window too small":
        return write_scene(tmp_path / "x.tif", dn_scene(40))
    if case == "all NaN":
        return write_scene(tmp_path / "x.tif", {b: np.full((n, n), np.nan, np.float32) for b in dn_scene(n)})
    if case == "uint8 type":
        return write_scene(tmp_path / "x.tif", {b: np.full((n, n), 30, np.uint8) for b in dn_scene(n)})
    if case == "no georeferencing":
        return write_scene(tmp_path / "x.tif", dn_scene(n), crs=None)
    if case == "corrupt tiff":
        path = write_scene(tmp_path / "x.tif", dn_scene(n))
        path.write_bytes(path.read_bytes()[:200])
        return path
    if case == "missing file":
        return tmp_path / "nope.tif"
    raise AssertionError(case)


BAD = {
    "missing band": "missing band(s) B05",
    "no band descriptions": "without descriptions",
    "wrong band count": "2 bands in a per-band file",
    "crs disagrees": "reproject all bands to one CRS",
    "transform disagrees": "does not line up",
    "all no-data": "every pixel of B08, B04, B05 in the window is no-data",
    "all NaN": "every pixel of B08, B04, B05 in the window is no-data",
    "declared no-data only": "every pixel of B08, B04, B05 in the window is no-data",
    "harmonised DNs tagged with the offset": "look already harmonised (offset applied twice); pass --boa-offset 0",
    "float DNs": "float DNs (0..10000), not reflectance (0..1); divide by 10000",
    "DNs scaled wrong": "not Sentinel-2 DNs (reflectance x 10000)",
    "window too small": "window 40x40 px is smaller than the minimum 64x64 px",
    "uint8 type": "band type uint8 cannot hold Sentinel-2 reflectance",
    "no georeferencing": "no georeferencing",
    "corrupt tiff": "not a readable raster",
    "missing file": "does not exist",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bands_give_one_line_naming_the_file(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # writing the bad file
        path = _bad(tmp_path, case)
    with pytest.raises(RasterError, match=re.escape(BAD[case])):
        read_bands(path)
    out = tmp_path / "out.jpg"
    assert main(["composite", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(path) in err
    assert not out.exists()


def test_a_window_outside_the_raster_is_refused(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "x.tif", dn_scene(64))
    with pytest.raises(RasterError, match=r"window \(60, 60, 10, 10\) lies \(partly\) outside"):
        read_bands(path, box=(60, 60, 10, 10))
    with pytest.raises(RasterError, match="outside"):
        read_bands(path, bounds=(400_000, 4_000_000, 400_100, 4_000_100))


def test_nan_in_float_input_is_no_data(tmp_path: Path) -> None:
    scene = {b: np.full((64, 64), 0.2, np.float32) for b in dn_scene(64)}
    scene["B04"][0, 0] = np.nan
    bands = read_bands(write_scene(tmp_path / "f.tif", scene))
    assert bands.info.offset_from == "float reflectance" and np.isnan(bands["B04"][0, 0])
    assert float(bands["B04"][1, 1]) == pytest.approx(0.2)


# -- every gate at, just above and just below its threshold -----------------------------------


def test_gate1_blank_thresholds() -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:5] = 10  # exactly 50 % non-zero
    config = GateConfig()
    assert not gates.not_blank(
        5 * 1024, np.full((2, 2, 3), 9, np.uint8)
    ).passed  # size at the limit: > needed
    assert gates.not_blank(5 * 1024 + 1, np.full((2, 2, 3), 9, np.uint8)).passed
    assert not gates.not_blank(10_000, rgb, config).passed
    rgb[5, 0] = 1
    assert gates.not_blank(10_000, rgb, config).passed
    rgb[:] = 0
    rgb[:4] = 10
    assert "non-zero pixels 40.0%" in gates.not_blank(10_000, rgb, config).reason


def _clear(n: int = 40, **change: float) -> dict[str, np.ndarray]:
    data = {"B02": 0.04, "B03": 0.06, "B04": 0.05, "B05": 0.1, "B08": 0.35} | change
    return {k: np.full((n, n), v, np.float32) for k, v in data.items()}


@pytest.mark.parametrize(
    ("setting", "measure"),
    [
        ("max_cloud", "cloud_cover"),
        ("max_mean_reflectance", "mean_reflectance_dn"),
        ("min_ndvi", "mean_ndvi"),
        ("max_saturated", "saturated_fraction"),
    ],
)
def test_gate2_each_threshold_flips_the_verdict_at_its_value(setting: str, measure: str) -> None:
    data = _clear()
    scl = np.full((40, 40), 4, np.uint8)
    scl[:10] = 9  # 25 % cloud
    scl[10:14] = 1  # 10 % saturated
    data["SCL"] = scl
    bands = bands_of(data)
    value = gates.not_cloudy(bands).values[measure]
    assert isinstance(value, float)
    inclusive = setting == "max_cloud"  # cloud cover <= 30 %; the others are strict
    upper = setting.startswith("max")
    at = gates.not_cloudy(bands, GateConfig().replace(**{setting: value}))
    above = gates.not_cloudy(
        bands, GateConfig().replace(**{setting: value * 1.01 if upper else value * 0.99})
    )
    below = gates.not_cloudy(
        bands, GateConfig().replace(**{setting: value * 0.99 if upper else value * 1.01})
    )
    assert above.passed and not below.passed
    assert at.passed is inclusive


def _scl(n: int = 40, cls: int = 4) -> np.ndarray:
    return np.full((n, n), cls, np.uint8)


def test_gate2_card_defaults_on_made_scenes() -> None:
    assert gates.not_cloudy(bands_of(_clear() | {"SCL": _scl()})).passed
    # A measured failure rejects even when cloud cover is unknown ...
    bright = gates.not_cloudy(bands_of(_clear(B02=0.5, B03=0.5, B04=0.45, B08=0.6)))
    assert bright.evaluated and bright.passed is False and "mean reflectance" in bright.reason
    bare = gates.not_cloudy(bands_of(_clear(B08=0.055)))
    assert bare.evaluated and bare.passed is False and "mean NDVI" in bare.reason
    # ... but a clear-looking scene whose cloud cover nobody measured is not passed.
    unknown = gates.not_cloudy(bands_of(_clear()))
    assert (unknown.evaluated, unknown.passed) == (False, None)
    assert unknown.reason.startswith("cloud cover not measured: no SCL and no cloud mask")
    assert unknown.values["mean_ndvi"] == pytest.approx((0.35 - 0.05) / 0.40)
    assert gates.not_cloudy(bands_of(_clear()), cloud_mask=np.ones((40, 40))).reason == (
        "cloud and shadow 100.0% > 30% (cloud mask)"
    )
    assert not gates.not_cloudy(None).evaluated


def test_the_product_cloud_tag_is_recorded_never_taken_for_the_window() -> None:
    clear_window = bands_of(_clear() | {"SCL": _scl()}, tags={"CLOUDY_PIXEL_PERCENTAGE": "91.5"})
    result = gates.not_cloudy(clear_window)
    assert result.passed and result.values["scene_cloud_tag"] == pytest.approx(0.915)
    assert result.values["cloud_source"] == "SCL" and result.values["cloud_cover"] == 0.0
    untagged_window = gates.not_cloudy(bands_of(_clear(), tags={"CLOUDY_PIXEL_PERCENTAGE": "2"}))
    assert not untagged_window.evaluated  # 2 % of a 110 km product says nothing about this window


def test_cloud_shadow_counts_as_cloud() -> None:
    scl = _scl()
    scl[:13] = 3  # cloud shadow over 32.5 %
    result = gates.not_cloudy(bands_of(_clear() | {"SCL": scl}))
    assert result.values["cloud_cover"] == pytest.approx(13 / 40) and not result.passed
    assert "cloud and shadow 32.5% > 30% (SCL)" in result.reason
    mask = np.ma.MaskedArray(np.zeros((40, 40), np.uint8), mask=np.zeros((40, 40), bool))
    mask[:10] = 2  # a mask's shadow class (any value but 0)
    mask[30:] = np.ma.masked  # its no-data: not counted either way
    cover, source = gates.cloud_cover(bands_of(_clear()), mask)
    assert (cover, source) == (pytest.approx(10 / 30), "cloud mask")


def test_gate3_context_thresholds() -> None:
    right = np.zeros((512, 256, 3), np.uint8)
    assert not gates.context_available(right).passed
    noisy = np.random.default_rng(0).integers(1, 255, (512, 256, 3), dtype=np.uint8)
    assert gates.context_available(noisy).passed
    flat = np.full((512, 256, 3), 128, np.uint8)
    result = gates.context_available(flat)
    assert not result.passed and "a flat fill" in result.reason
    std = gates.context_available(noisy).values["std"]
    assert isinstance(std, float)
    assert gates.context_available(noisy, GateConfig(min_context_std=std - 0.01)).passed
    assert not gates.context_available(noisy, GateConfig(min_context_std=std)).passed
    assert not gates.context_available(None).evaluated


def farmland(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Parcels of 16x16 px with distinct crops: bright red, NDVI 0.3..0.8, sharp edges."""
    rng = np.random.default_rng(seed)
    ndvi = np.kron(rng.uniform(0.3, 0.8, (n // 16, n // 16)), np.ones((16, 16)))
    red = np.full((n, n), 0.07)
    nir = red * (1 + ndvi) / (1 - ndvi)
    return {
        "B02": np.full((n, n), 0.05),
        "B03": np.full((n, n), 0.08),
        "B04": red,
        "B05": nir * 0.5,
        "B08": nir,
    }


def test_gate4_green_edge_density_tells_farmland_from_forest_water_and_urban() -> None:
    n = 64
    rng = np.random.default_rng(1)
    forest = {"B04": 0.03 + rng.normal(0, 0.003, (n, n)), "B08": 0.30 + rng.normal(0, 0.02, (n, n))}
    water = {"B04": np.full((n, n), 0.04), "B08": np.full((n, n), 0.02)}
    urban = {"B04": rng.uniform(0.08, 0.2, (n, n)), "B08": rng.uniform(0.1, 0.25, (n, n))}
    meadow = {"B04": np.full((n, n), 0.06), "B08": np.full((n, n), 0.36)}
    results = {
        name: gates.agricultural(bands_of({**d, "B05": d["B08"] * 0.5}))
        for name, d in dict(
            farmland=farmland(), forest=forest, water=water, urban=urban, meadow=meadow
        ).items()
    }
    assert results["farmland"].passed, results["farmland"].values
    assert "(forest)" in results["forest"].reason
    assert "(water, urban, rock or bare)" in results["water"].reason
    assert "(water, urban, rock or bare)" in results["urban"].reason
    assert "(no field mosaic)" in results["meadow"].reason


@pytest.mark.parametrize(
    ("setting", "measure"),
    [
        ("min_vegetated", "vegetated_fraction"),
        ("max_canopy", "canopy_fraction"),
        ("min_green_edge_density", "green_edge_density"),
    ],
)
def test_gate4_each_threshold_flips_the_verdict_at_its_value(setting: str, measure: str) -> None:
    data = farmland()
    data["B04"][:20] = 0.03  # a wood in the corner: some closed canopy
    data["B08"][:20] = 0.3
    data["B04"][-8:] = 0.1  # a village: not vegetated
    data["B08"][-8:] = 0.12
    bands = bands_of(data)
    value = gates.agricultural(bands).values[measure]
    assert isinstance(value, float) and 0 < value < 1
    upper = setting.startswith("max")
    at = gates.agricultural(bands, GateConfig().replace(**{setting: value}))
    above = gates.agricultural(
        bands, GateConfig().replace(**{setting: value * 1.01 if upper else value * 0.99})
    )
    below = gates.agricultural(
        bands, GateConfig().replace(**{setting: value * 0.99 if upper else value * 1.01})
    )
    assert at.passed and above.passed and not below.passed  # all three are inclusive


def test_gate4_land_cover_decides_when_given() -> None:
    cover = np.full((10, 10), 10, np.uint8)  # ESA WorldCover tree cover
    cover[:3] = 40  # cropland: 30 %
    assert gates.agricultural(None, landcover=cover).passed
    cover[2, 0] = 10
    assert not gates.agricultural(None, landcover=cover).passed
    assert not gates.agricultural(None).evaluated


def test_gate_config_from_json_refuses_unknown_keys() -> None:
    assert thresholds.config_from({"max_cloud": 0.2, "cropland_classes": [1, 2]}) == GateConfig(
        max_cloud=0.2, cropland_classes=(1, 2)
    )
    with pytest.raises(ValueError, match="unknown gate setting"):
        thresholds.config_from({"max_clouds": 0.2})


WINDOW_ERRORS = {
    "negative size": (
        ["--box", "0", "0", "-5", "70"],
        "box (0, 0, -5, 70): WIDTH and HEIGHT must be positive",
    ),
    "negative offset": (["--box", "-1", "0", "70", "70"], "COL, ROW 0 or more"),
    "inverted bounds": (
        ["--bounds", "500640", "4999360", "500000", "5000000"],
        "are inverted or empty: LEFT must be less than RIGHT",
    ),
    "empty bounds": (["--bounds", "500000", "4999360", "500000", "5000000"], "are inverted or empty"),
    "non-finite bounds": (["--bounds", "nan", "4999360", "500640", "5000000"], "hold a non-finite number"),
    "outside": (["--box", "30", "30", "70", "70"], "lies (partly) outside the raster"),
    "too small": (["--box", "0", "0", "2", "1"], "window 2x1 px is smaller than the minimum 64x64 px"),
}


@pytest.mark.parametrize("case", sorted(WINDOW_ERRORS))
def test_every_window_error_is_one_line_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scene(tmp_path / "x.tif", dn_scene(64))
    argv, message = WINDOW_ERRORS[case]
    out = tmp_path / "tile.jpg"
    assert main(["composite", str(path), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_a_small_window_needs_the_explicit_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scene(tmp_path / "x.tif", dn_scene(64))
    out = tmp_path / "tile.jpg"
    assert main(["composite", str(path), "--out", str(out), "--box", "0", "0", "16", "32"]) == 2
    assert "--allow-small-window" in capsys.readouterr().err
    assert (
        main(
            ["composite", str(path), "--out", str(out), "--box", "0", "0", "16", "32", "--allow-small-window"]
        )
        == 0
    )
    assert "resized from 16x32 px" in capsys.readouterr().out
    with Image.open(out) as tile:
        assert tile.size == (256, 512)


@pytest.mark.parametrize("seed", range(4))
def test_pixel_std_matches_numpy_float(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256 >> seed, (512, 256, 3), dtype=np.uint8)
    for view in (pixels, pixels[:, ::3], pixels[::2, :, 1:]):
        assert gates.pixel_std(view) == pytest.approx(float(view.std()), rel=1e-14)
    assert gates.pixel_std(np.full((8, 8, 3), 200, np.uint8)) == 0.0
    assert gates.pixel_std(np.zeros((0, 3), np.uint8)) == 0.0
    floats = pixels.astype(np.float32) / 255
    assert gates.pixel_std(floats) == float(floats.std())


def test_pixel_std_is_exact_whatever_the_order() -> None:
    # 54 pixels whose standard deviation is exactly 2.0 (sum 144, sum of squares 600): the
    # exact sums give 2.0 in every order, where a float computation's last digit varies with it.
    values = np.array([0] * 8 + [2] * 33 + [6] * 13, dtype=np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert gates.pixel_std(rng.permutation(values)) == 2.0
