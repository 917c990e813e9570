"""Gate 2 on real Sentinel-2 scenes: s2cloudless against eo-learn's reference masks, and the
cloudy and forest scenes of the reference patch through `cropmark composite` and `cropmark build`,
written as a user's files (13-band L1C GeoTIFF, per-band folder at native resolutions, L2A copy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.cli import main
from builder.quality import gates
from builder.raster import clouds
from builder.raster.bands import read_bands
from builder.release.build import BuildConfig, build
from tests.data import eolearn
from tests.data.factory import TinyCorpus
from tests.test_raster import bands_of

CLOUDY, CLEAR = (0, 1), (2, 3, 4)

WRITERS: dict[str, Callable[[int, Path], Path]] = {
    "l1c-geotiff": lambda k, root: eolearn.write_multiband(k, root / f"scene{k}.tif"),
    "l1c-band-folder": lambda k, root: eolearn.write_band_folder(k, root / f"scene{k}-bands"),
    "l2a-offset": lambda k, root: eolearn.write_l2a_copy(k, root / f"scene{k}-l2a.tif"),
}


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    root = tmp_path_factory.mktemp("eolearn-user-files")
    return {(form, k): write(k, root) for form, write in WRITERS.items() for k in range(5)}


def test_s2cloudless_agrees_with_the_reference_masks_on_every_real_scene(
    real: dict[tuple[str, int], Path],
) -> None:
    for k in range(5):
        bands = read_bands(real["l1c-geotiff", k])
        mask = clouds.detect(bands)
        reference = eolearn.reference("CLM")[eolearn.ORDER[k], ..., 0].astype(bool)
        agreement = float((np.ma.getdata(mask) == reference).mean())
        assert agreement >= 0.998, (k, agreement)
        assert not np.ma.getmaskarray(mask).any()  # every pixel has all ten bands
        clp = eolearn.reference("CLP")[eolearn.ORDER[k], ..., 0]
        assert abs(float(clouds.probability(bands).mean()) - float(clp.mean())) < 0.01
    assert clouds.unavailable(read_bands(real["l2a-offset", 0])) is not None  # no B10, and L2A


def _composite(path: Path, out: Path, *extra: str) -> dict[str, dict[str, object]]:
    report = out.with_suffix(".json")
    assert main(["composite", str(path), "--out", str(out), "--report", str(report), *extra]) == 0
    return {g["gate"]: g for g in json.loads(report.read_text())["gates"]}


@pytest.mark.parametrize("form", sorted(WRITERS))
def test_composite_never_passes_a_cloudy_scene_and_rejects_the_forest(
    form: str, real: dict[tuple[str, int], Path], tmp_path: Path
) -> None:
    for k in CLOUDY:
        cloudy = _composite(real[form, k], tmp_path / f"c{k}.jpg")["s2_not_cloudy"]
        assert cloudy["passed"] is not True, (form, k, cloudy)
        if form.startswith("l1c"):  # the detector ran and measured the cloud
            assert cloudy["passed"] is False and cloudy["values"]["cloud_source"] == "s2cloudless"
            assert cloudy["values"]["cloud_cover"] > 0.99
    for k in CLEAR:
        result = _composite(real[form, k], tmp_path / f"f{k}.jpg")
        assert result["agricultural"]["passed"] is False and "(forest)" in result["agricultural"]["reason"]
        cloud = result["s2_not_cloudy"]
        if form.startswith("l1c"):
            assert cloud["passed"] is True and cloud["values"]["cloud_cover"] == 0.0
        else:  # L2A without SCL or mask: unknown cloud is not a pass
            assert cloud["evaluated"] is False and "cloud cover not measured" in cloud["reason"]


def test_composite_prints_the_cloud_verdict(
    real: dict[tuple[str, int], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["composite", str(real["l1c-geotiff", 0]), "--out", str(tmp_path / "t.jpg")]) == 0
    out = capsys.readouterr().out
    assert "gate s2_not_cloudy      FAIL: cloud and shadow 100.0% > 30% (s2cloudless)" in out
    assert "thresholds     the card's" in out


@pytest.mark.parametrize("form", sorted(WRITERS))
def test_build_never_publishes_a_cloudy_scene_as_passed_and_rejects_the_forest(
    form: str, real: dict[tuple[str, int], Path], tmp_path: Path
) -> None:
    """Each real scene becomes a composite of a corpus, its bands beside it as the user has them."""
    root = tmp_path / "corpus"
    corpus = TinyCorpus(root, train=2, eval_=2)
    context_path = tmp_path / "context.png"
    Image.fromarray(np.random.default_rng(3).integers(40, 200, (512, 256, 3), dtype=np.uint8)).save(
        context_path
    )
    (root / "bands").mkdir()
    for k in range(5):
        composite = root / "composites" / f"real_{k}.jpg"
        assert (
            main(["composite", str(real[form, k]), "--out", str(composite), "--context", str(context_path)])
            == 0
        )
        corpus.add_row("train" if k % 2 else "eval", f"composites/real_{k}.jpg", "No")
        source = real[form, k]
        if source.is_dir():
            (root / "bands" / f"real_{k}").mkdir()
            for file in source.iterdir():
                (root / "bands" / f"real_{k}" / file.name).write_bytes(file.read_bytes())
        else:
            (root / "bands" / f"real_{k}.tif").write_bytes(source.read_bytes())
    report = build(BuildConfig(corpus.write(), tmp_path / "out", "1.0.0")).report
    published = {t.source: t for t in report.tiles if t.source.startswith("composites/real_")}
    rejected = {r.where: r for r in report.rejections}
    for k in CLEAR:
        forest = rejected[f"composites/real_{k}.jpg"]
        assert forest.reason == "gate_not_agricultural" and "(forest)" in forest.detail
    for k in CLOUDY:
        source = f"composites/real_{k}.jpg"
        if form.startswith("l1c"):  # the detector measured the cloud: gate 2 rejected it first
            assert rejected[source].reason == "gate_s2_cloudy" and "(s2cloudless)" in rejected[source].detail
        elif source in published:  # L2A without SCL or mask: cloud unknown, so never "passed"
            cloud = published[source].gates[1]
            assert cloud["evaluated"] is False and cloud["passed"] is None
            assert "cloud cover not measured" in cloud["reason"]
        else:  # ... or rejected on what was measured
            assert rejected[source].reason in ("gate_s2_cloudy", "gate_not_agricultural")
    assert set(published) <= {f"composites/real_{k}.jpg" for k in CLOUDY}
    assert all(t.gates[1]["passed"] is not True for t in published.values())
    gate2 = report.gates.per_gate["s2_not_cloudy"]
    if form.startswith("l1c"):
        assert (gate2.evaluated, gate2.passed, gate2.rejected) == (5, 3, 2)
    else:
        assert gate2.passed == 0 and gate2.not_evaluated_reasons


def test_without_the_bands_the_detector_needs_cloud_is_not_measured() -> None:
    n = 40
    made = {b: np.full((n, n), 0.05, np.float32) for b in ("B02", "B03", "B04", "B05")} | {
        "B08": np.full((n, n), 0.35, np.float32)
    }
    why = clouds.unavailable(bands_of(made))
    assert why is not None and why.startswith("s2cloudless needs B01, B8A, B09, B10, B11, B12")
    with pytest.raises(ValueError, match="s2cloudless needs"):
        clouds.detect(bands_of(made))
    result = gates.not_cloudy(bands_of(made))
    assert (result.evaluated, result.passed) == (False, None)


def test_a_broken_detector_install_stops_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from builder.errors import CropmarkError
    from builder.raster.bands import Bands, ReadInfo

    shape = (64, 64)
    data = {b: np.full(shape, 0.1, np.float32) for b in clouds.DETECTOR_BANDS} | {
        "B08": np.full(shape, 0.35, np.float32)
    }
    bands = Bands(data, None, None, ReadInfo("made", "L1C", 0, "float reflectance", "", shape, (), {}))
    clouds._detector.cache_clear()
    monkeypatch.setitem(sys.modules, "s2cloudless.cloud_detector", None)  # import now fails
    try:
        with pytest.raises(
            CropmarkError, match=r"s2cloudless cannot be imported .*pip install -c constraints.txt"
        ):
            gates.not_cloudy(bands)
    finally:
        clouds._detector.cache_clear()
    monkeypatch.undo()
    assert gates.not_cloudy(bands).values["cloud_source"] == "s2cloudless"  # and works again
