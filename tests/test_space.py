"""The Gradio Space on loopback: gradio_client calls, concurrency, and a headless chromium."""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("torch")

from gradio_client import Client, handle_file

from builder.cards import SPACE_GRADIO
from builder.cli import main
from builder.model import baseline as physics
from builder.model import data
from builder.model.scoring import load_scorer
from builder.model.train import load_config, train
from tests.space_server import run_space

ROOT = Path(__file__).resolve().parent.parent
P_YES = re.compile(r"fine-tuned model's P\(Yes\) is ([0-9.]+): \*\*(Yes|No)\*\*")


@pytest.fixture(scope="module")
def space(
    tiny_model: Path, small_release: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The Space with the tiny model, a 2-step adapter, the baseline and two example tiles."""
    tmp = tmp_path_factory.mktemp("space")
    assert main(["baseline", str(small_release), "--out", str(tmp / "baseline"), "--quiet"]) == 0
    adapter = tmp / "adapter"
    train(
        load_config(
            None, {"base_model": str(tiny_model), "output_dir": str(adapter), "max_steps": 2, "batch_size": 2}
        ),
        str(small_release),
        progress=False,
    )
    examples = data.examples(small_release, "eval")
    yes = next(e for e in examples if e.label == "Yes")
    no = next(e for e in examples if e.label == "No")
    (tmp / "examples").mkdir()
    for e in (yes, no):
        shutil.copy(e.path, tmp / "examples" / e.path.name)
    env = {
        "CROPMARK_BASE_MODEL": str(tiny_model),
        "CROPMARK_ADAPTER": str(adapter),
        "CROPMARK_BASELINE": str(tmp / "baseline" / "baseline.json"),
        "CROPMARK_EXAMPLES": str(tmp / "examples"),
        "CROPMARK_MAX_MB": "1",
        "CROPMARK_CONCURRENCY": "2",
    }
    with run_space(env, tmp / "space.log") as url:
        yield {
            "url": url,
            "client": Client(url, verbose=False),
            "yes": yes.path,
            "no": no.path,
            "scorer": load_scorer(str(tiny_model), adapter, device="cpu"),
            "baseline": physics.load(tmp / "baseline" / "baseline.json"),
            "tmp": tmp,
        }


def _expected(space: dict[str, Any], rgb: np.ndarray) -> tuple[float, float]:
    p = float(space["scorer"].p_yes([Image.fromarray(rgb)])[0])
    return p, space["baseline"].p_yes_tile(rgb)


def _predict(space: dict[str, Any], path: Path) -> tuple[Any, ...]:
    return tuple(space["client"].predict(handle_file(str(path)), api_name="/predict"))


def _check(result: tuple[Any, ...], expected: tuple[float, float]) -> None:
    vlm, baseline, maps, text = result
    match = P_YES.search(text)
    assert match is not None, text
    assert float(match.group(1)) == pytest.approx(expected[0], abs=1e-3)
    assert match.group(2) == ("Yes" if expected[0] >= 0.5 else "No") == vlm["label"]
    assert baseline["label"] == ("Yes" if expected[1] >= 0.5 else "No")
    confidences = {c["label"]: c["confidence"] for c in baseline["confidences"]}
    assert confidences["Yes"] == pytest.approx(expected[1], abs=0.01)
    assert "candidates for verification" in text and "never a find" in text
    with Image.open(maps) as image:
        assert image.width > 2 * 256 and image.height > 512  # two maps with colour bars


def test_the_page_says_it_runs_a_tiny_test_model(space: dict[str, Any]) -> None:
    assert "tiny random test model" in space["client"].predict(api_name="/status")


@pytest.mark.parametrize("which", ["yes", "no"])
def test_a_tile_gets_the_scores_of_the_evaluation_code(space: dict[str, Any], which: str) -> None:
    path = space[which]
    result = _predict(space, path)
    _check(result, _expected(space, np.asarray(Image.open(path).convert("RGB"))))
    assert "A 256x512 Sentinel-2 tile." in result[3]


def test_a_whole_composite_is_cut_to_its_s2_half(space: dict[str, Any], tmp_path: Path) -> None:
    tile = np.asarray(Image.open(space["yes"]).convert("RGB"))
    context = np.random.default_rng(0).integers(0, 255, tile.shape, dtype=np.uint8)
    Image.fromarray(np.hstack([tile, context])).save(tmp_path / "composite.png")
    result = _predict(space, tmp_path / "composite.png")
    _check(result, _expected(space, tile))
    assert "the right half was ignored" in result[3]


def _bomb(path: Path, side: int) -> Path:
    """A valid 1x1 PNG whose header then claims ``side`` x ``side`` pixels."""
    Image.new("RGB", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", side, side)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


BAD = {
    "not an image": (lambda p: p.with_suffix(".png").write_text("hello"), "not an image that can be read"),
    "empty": (lambda p: p.with_suffix(".png").write_bytes(b""), "The file is empty"),
    "wrong shape": (
        lambda p: Image.new("RGB", (300, 300)).save(p.with_suffix(".png")),
        "The image is 300x300 (width x height)",
    ),
    "grey": (lambda p: Image.new("L", (256, 512)).save(p.with_suffix(".png")), "The image is L (not RGB)"),
    # Pillow's own limit refuses this one inside Image.open; ours (16 Mpx) the next.
    "bomb": (
        lambda p: _bomb(p.with_suffix(".png"), 40000),
        "The image claims too many pixels to open safely",
    ),
    "large": (lambda p: _bomb(p.with_suffix(".png"), 5000), "The image claims 5000x5000 pixels"),
    "too big": (
        lambda p: p.with_suffix(".png").write_bytes(np.random.default_rng(0).bytes(3 * 2**19)),
        "The file is 1.5 MB; the limit is 1 MB",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_its_friendly_message(space: dict[str, Any], tmp_path: Path, case: str) -> None:
    from gradio_client.exceptions import AppError

    make, message = BAD[case]
    make(tmp_path / "upload")
    with pytest.raises(AppError) as caught:
        _predict(space, tmp_path / "upload.png")
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_no_upload_asks_for_one(space: dict[str, Any]) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload a tile or pick an example first"):
        space["client"].predict(None, api_name="/predict")


def test_32_concurrent_requests_are_all_answered(space: dict[str, Any]) -> None:
    paths = [space["yes"], space["no"]] * 16

    def call(path: Path) -> str:
        client = Client(space["url"], verbose=False)
        return str(client.predict(handle_file(str(path)), api_name="/predict")[0]["label"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        labels = list(pool.map(call, paths))
    assert len(labels) == 32 and set(labels) <= {"Yes", "No"}
    # The same tile gets the same answer under load.
    assert len(set(labels[0::2])) == 1 and len(set(labels[1::2])) == 1


def test_space_requirements_constraints_and_the_space_card_pin_one_gradio() -> None:
    pins = dict(
        line.split("==")
        for line in (ROOT / "space" / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    constraints = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    assert pins["gradio"] == constraints["gradio"] == SPACE_GRADIO


def test_chromium_uploads_a_tile_and_shows_the_verdict(space: dict[str, Any], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    expected = _expected(space, np.asarray(Image.open(space["yes"]).convert("RGB")))
    verdict = "Yes" if expected[0] >= 0.5 else "No"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(space["url"])
            page.locator("#status").get_by_text("tiny random test model").wait_for(timeout=60_000)
            page.locator("#upload input[type=file]").set_input_files(str(space["yes"]))
            page.locator("#upload").get_by_text(space["yes"].name).wait_for(timeout=30_000)
            page.click("#score")
            page.get_by_text("fine-tuned model's P(Yes)").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
            text = page.inner_text("#explanation")
        finally:
            browser.close()
    # The page renders the Markdown, so the verdict reads "P(Yes) is 0.384: No".
    assert f"P(Yes) is {expected[0]:.3f}: {verdict}" in text, text
    with Image.open(tmp_path / "space.png") as shot:
        assert shot.width >= 1280 and shot.height > 600


def test_an_unreachable_model_falls_back_to_the_tiny_model_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    monkeypatch.setenv("CROPMARK_BASE_MODEL", str(tmp_path / "no-such-model"))
    monkeypatch.setenv("CROPMARK_ADAPTER", "")
    monkeypatch.setenv("CROPMARK_BASELINE", str(tmp_path / "no-baseline.json"))
    monkeypatch.setenv("CROPMARK_EXAMPLES", str(tmp_path / "examples"))
    spec = importlib.util.spec_from_file_location("space_app_offline", ROOT / "space" / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.MODELS.load()
    assert app.MODELS.ready.is_set() and app.MODELS.scorer is not None
    assert app.MODELS.baseline is None
    assert app.MODELS.status.startswith("**Offline test mode**: base model")
    assert "tiny random test model, whose verdicts mean nothing" in app.MODELS.status
    assert "No physics baseline" in app.MODELS.status
    # Without a baseline the page still answers, with the baseline column empty.
    tile = np.random.default_rng(0).integers(0, 255, (512, 256, 3), dtype=np.uint8)
    Image.fromarray(tile).save(tmp_path / "tile.png")
    vlm, baseline, _maps, text = app.predict(str(tmp_path / "tile.png"))
    assert set(vlm) == {"Yes", "No"} and baseline is None
    assert "physics baseline" not in text


@pytest.mark.parametrize("content", [b"{bad", b"[1]", b'{"adapter": 5}', b"\xff\xfe{}"])
def test_a_corrupt_cropmark_space_json_is_said_on_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    import importlib.util

    folder = tmp_path / "space"
    folder.mkdir()
    shutil.copy(ROOT / "space" / "app.py", folder / "app.py")
    (folder / "cropmark_space.json").write_bytes(content)
    monkeypatch.setenv("CROPMARK_BASE_MODEL", str(tmp_path / "no-such-model"))
    monkeypatch.setenv("CROPMARK_BASELINE", str(tmp_path / "no-baseline.json"))
    monkeypatch.setenv("CROPMARK_EXAMPLES", str(tmp_path / "examples"))
    spec = importlib.util.spec_from_file_location("space_app_corrupt", folder / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)  # starts, on the defaults
    assert app.CONFIG["problem"].startswith("cropmark_space.json could not be read (")
    assert app.ADAPTER == "" and app.ADAPTER_REVISION is None
    app.MODELS.load()
    assert "cropmark_space.json could not be read" in app.MODELS.status
    assert "publish it again" in app.MODELS.status
