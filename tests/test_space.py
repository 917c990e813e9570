"""The Gradio Space on loopback: gradio_client calls, concurrency, and a headless chromium."""

from __future__ import annotations

import ast
import os
import re
import shutil
import ssl
import struct
import subprocess
import textwrap
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

pytest.importorskip("gradio")
pytest.importorskip("torch")

from gradio_client import handle_file

from builder.cli import main
from builder.model import baseline as physics
from builder.model import data
from builder.model.scoring import load_scorer
from builder.model.train import load_config, train
from builder.release.cards import SPACE_GRADIO
from tests.space_server import (
    TIMEOUT_S,
    BrowserClient,
    HttpApiClient,
    client,
    default_client,
    run_space,
)
from tests.upload_files import exif_jpeg, png16, tiff16

ROOT = Path(__file__).resolve().parent.parent
P_YES = re.compile(r"TEST MODEL's P\(Yes\) is ([0-9.]+): \*\*(Yes|No)\*\*")
MARKED = " (TEST MODEL)"  # the test model's classes carry the marker in the value itself


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
    rows = ["file_name,label"]
    for e in (yes, no):
        shutil.copy(e.path, tmp / "examples" / e.path.name)
        rows.append(f"{e.path.name},{e.label}")
    (tmp / "examples" / "metadata.csv").write_text("\n".join(rows) + "\n")
    env = {
        "CROPMARK_BASE_MODEL": str(tiny_model),
        "CROPMARK_ADAPTER": str(adapter),
        "CROPMARK_BASELINE": str(tmp / "baseline" / "baseline.json"),
        "CROPMARK_EXAMPLES": str(tmp / "examples"),
        "CROPMARK_MAX_MB": "1",
        "CROPMARK_CONCURRENCY": "2",
    }
    with run_space(env, tmp / "space.log") as (url, _process):
        yield {
            "url": url,
            "client": client(url),
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
    marker, vlm, baseline, shown, text = result
    match = P_YES.search(text)
    assert match is not None, text
    assert float(match.group(1)) == pytest.approx(expected[0], abs=1e-3)
    assert match.group(2) == ("Yes" if expected[0] >= 0.5 else "No")
    assert vlm["label"] == match.group(2) + MARKED
    assert {c["label"] for c in vlm["confidences"]} == {"Yes" + MARKED, "No" + MARKED}
    assert baseline["label"] == ("Yes" if expected[1] >= 0.5 else "No")
    confidences = {c["label"]: c["confidence"] for c in baseline["confidences"]}
    assert confidences["Yes"] == pytest.approx(expected[1], abs=0.01)
    assert "candidates for verification" in text and "never a find" in text
    assert "TEST MODEL" in marker and "random" in marker  # the verdict's own marker
    with Image.open(shown) as image:
        assert image.width > 3 * 256 and image.height > 512  # the scored tile and two maps with colour bars


def test_the_page_says_it_runs_a_tiny_test_model(space: dict[str, Any]) -> None:
    assert "tiny random test model" in space["client"].predict(api_name="/status")


@pytest.mark.parametrize("which", ["yes", "no"])
def test_a_tile_gets_the_scores_of_the_evaluation_code(space: dict[str, Any], which: str) -> None:
    path = space[which]
    result = _predict(space, path)
    _check(result, _expected(space, np.asarray(Image.open(path).convert("RGB"))))
    assert "A 256x512 Sentinel-2 tile." in result[4]


def test_a_whole_composite_is_cut_to_its_s2_half(space: dict[str, Any], tmp_path: Path) -> None:
    tile = np.asarray(Image.open(space["yes"]).convert("RGB"))
    context = np.random.default_rng(0).integers(0, 255, tile.shape, dtype=np.uint8)
    Image.fromarray(np.hstack([tile, context])).save(tmp_path / "composite.png")
    result = _predict(space, tmp_path / "composite.png")
    _check(result, _expected(space, tile))
    assert "the right half was ignored" in result[4]


def _documented_call() -> str:
    """The Python block of space/app.py's docstring that tells users how to call the Space."""
    docstring = ast.get_docstring(ast.parse((ROOT / "space" / "app.py").read_text(encoding="utf-8")))
    assert docstring is not None
    block = docstring.split("reuse it for every tile::\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip()


def test_the_documented_python_call_scores_a_tile(space: dict[str, Any]) -> None:
    """The docstring's code, run as written: only the Space id becomes the loopback address (with
    the tests' generous timeout) and the tile a real one."""
    code = _documented_call()
    assert 'Client("OWNER/SPACE", ssl_verify=httpx.create_ssl_context())' in code
    assert 'handle_file("tile.jpg")' in code
    assert code in (ROOT / "README.md").read_text(encoding="utf-8")  # the README shows the same call
    code = code.replace('"OWNER/SPACE"', f'{space["url"]!r}, httpx_kwargs={{"timeout": {TIMEOUT_S}}}')
    code = code.replace('"tile.jpg"', repr(str(space["yes"])))
    scope: dict[str, Any] = {}
    exec(compile(code, "space/app.py docstring", "exec"), scope)  # the repository's own text
    assert isinstance(scope["space"]._info, dict)  # a Client, reused below
    result = tuple(scope[name] for name in ("marker", "vlm", "baseline", "picture", "explanation"))
    _check(result, _expected(space, np.asarray(Image.open(space["yes"]).convert("RGB"))))
    # The same Client, reused, scores the next tile.
    again = scope["space"].predict(handle_file(str(space["no"])), api_name="/predict")
    _check(tuple(again), _expected(space, np.asarray(Image.open(space["no"]).convert("RGB"))))


def test_gradio_clients_defaults_get_the_same_answer(space: dict[str, Any]) -> None:
    """``Client(url)`` as the page's "Use via API" shows it: slower per call, the same answer."""
    result = tuple(default_client(space["url"]).predict(handle_file(str(space["yes"])), api_name="/predict"))
    _check(result, _expected(space, np.asarray(Image.open(space["yes"]).convert("RGB"))))


def test_gradios_http_api_gets_the_same_answer(space: dict[str, Any], tmp_path: Path) -> None:
    """The Space through Gradio's HTTP API (any language; the lighter way ``space/app.py``
    documents): the verdicts and the explanation gradio_client gets; a bad upload ends the
    event stream with the page's message."""
    bad = tmp_path / "upload.png"
    bad.write_text("hello")
    api = HttpApiClient(space["url"])
    try:
        outputs = api.predict(space["yes"])
        with pytest.raises(RuntimeError, match="not an image that can be read"):
            api.predict(bad)
        # A path among Gradio's uploads that no upload returned: the app's sentence, not a
        # traceback in the Space's log; a path outside them is refused by Gradio itself.
        with pytest.raises(RuntimeError, match="This upload cannot be found"):
            api.score(api.upload(space["yes"]) + ".missing")
        with pytest.raises(RuntimeError, match='"error": null'):
            api.score(str(tmp_path / "never-uploaded.jpg"))
        big = tmp_path / "big.png"
        big.write_bytes(np.random.default_rng(1).bytes(3 * 2**19))
        with pytest.raises(RuntimeError, match=r"upload refused \(413\)"):
            api.predict(big)
    finally:
        api.close()
    expected = space["client"].predict(handle_file(str(space["yes"])), api_name="/predict")
    assert outputs[0] == expected[0] and outputs[4] == expected[4]
    for got, want in zip(outputs[1:3], expected[1:3], strict=True):
        assert got["label"] == want["label"]
        assert {c["label"]: c["confidence"] for c in got["confidences"]} == {
            c["label"]: c["confidence"] for c in want["confidences"]
        }
    assert outputs[3]["url"].startswith(space["url"].rstrip("/") + "/gradio_api/file=")


def test_without_downloads_the_picture_is_the_spaces_file_record(space: dict[str, Any]) -> None:
    import httpx

    api = client(space["url"], download_files=False)
    marker, vlm, _baseline, picture, _text = api.predict(handle_file(str(space["no"])), api_name="/predict")
    assert "TEST MODEL" in marker and vlm["label"] in ("Yes" + MARKED, "No" + MARKED)
    assert isinstance(picture, dict) and picture["path"] and picture["url"], picture
    response = httpx.get(picture["url"], timeout=TIMEOUT_S)
    response.raise_for_status()
    assert response.content[:3] == b"\xff\xd8\xff"  # the JPEG the page shows


def test_the_documented_ssl_context_still_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    """One SSL context for all calls is httpx's default verification built once, not verification
    turned off: a Space behind a self-signed certificate is refused as with ``ssl_verify=True``."""
    import http.server

    import httpx
    from gradio_client import Client

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: the TLS check was not evaluated")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [openssl, *request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    try:
        # The server answers TLS for a client that trusts its certificate...
        trusted = httpx.get(url + "config", verify=ssl.create_default_context(cafile=cert), timeout=TIMEOUT_S)
        assert trusted.status_code == 501  # BaseHTTPRequestHandler has no do_GET
        # ...and the documented client, like the default one, refuses it.
        for verify in (httpx.create_ssl_context(), True):
            with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
                Client(url, verbose=False, ssl_verify=verify, httpx_kwargs={"timeout": TIMEOUT_S})
    finally:
        server.shutdown()
        server.server_close()


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
    "16-bit PNG": (
        lambda p: png16(p.with_suffix(".png"), np.full((512, 256, 3), 40000, dtype=np.uint16)),
        "The image has 16 bits per channel",
    ),
    "16-bit TIFF": (
        lambda p: p.with_suffix(".png").write_bytes(
            tiff16(p.with_suffix(".tif"), np.full((512, 256, 3), 40000, dtype=np.uint16)).read_bytes()
        ),
        "The image has 16 bits per channel",
    ),
    "EXIF-turned sideways": (
        lambda p: p.with_suffix(".png").write_bytes(
            exif_jpeg(p.with_suffix(".jpg"), np.zeros((512, 256, 3), np.uint8), 6).read_bytes()
        ),
        "The image is 512x256 (width x height) as displayed (its EXIF orientation tag turns",
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


def test_an_upload_over_the_limit_is_refused_by_gradio_with_the_apps_limit(
    space: dict[str, Any], tmp_path: Path
) -> None:
    """Gradio enforces the app's limit (1 MiB here): one limit, whoever checks it first."""
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).bytes(3 * 2**19))
    browser = BrowserClient(space["url"])
    try:
        with pytest.raises(RuntimeError, match=f"maximum allowed size of {2**20} bytes"):
            browser.predict(big)
    finally:
        browser.close()


def test_an_exif_rotated_tile_is_scored_upright(space: dict[str, Any], tmp_path: Path) -> None:
    tile = np.asarray(Image.open(space["yes"]).convert("RGB"))
    path = exif_jpeg(tmp_path / "turned.jpg", np.ascontiguousarray(np.rot90(tile, k=1)), orientation=6)
    with Image.open(path) as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    result = _predict(space, path)
    _check(result, _expected(space, upright))
    assert "turned upright by its EXIF orientation tag" in result[4]


def test_32_concurrent_requests_are_all_answered(space: dict[str, Any]) -> None:
    paths = [space["yes"], space["no"]] * 16

    def call(path: Path) -> str:
        return str(client(space["url"]).predict(handle_file(str(path)), api_name="/predict")[1]["label"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        labels = list(pool.map(call, paths))
    assert len(labels) == 32 and set(labels) <= {"Yes" + MARKED, "No" + MARKED}
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


def _chromium() -> str:
    pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return chromium


def test_chromium_shows_the_tile_its_verdict_the_test_marker_and_labelled_examples(
    space: dict[str, Any], tmp_path: Path
) -> None:
    """The page as a user sees it; the screenshots are saved beside the test's temporary files."""
    from playwright.sync_api import sync_playwright

    expected = _expected(space, np.asarray(Image.open(space["yes"]).convert("RGB")))
    verdict = "Yes" if expected[0] >= 0.5 else "No"
    tile = np.asarray(Image.open(space["no"]).convert("RGB"))
    composite = tmp_path / "composite.png"
    Image.fromarray(np.hstack([tile, np.full_like(tile, 200)])).save(composite)
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).bytes(3 * 2**19))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(300_000)  # a busy machine is slow, never wrong
            page.goto(space["url"])
            page.locator("#status").get_by_text("tiny random test model").wait_for()
            # The examples are thumbnails with their dataset labels.
            thumbnails = page.locator("#examples .thumbnail-item")
            captions = sorted(thumbnails.all_inner_texts())
            assert [c.split("·")[0].strip() for c in captions] == ["label: No", "label: Yes"]
            assert thumbnails.locator("img").count() == 2
            # Upload a tile: the scored picture, the verdict and its test marker appear.
            page.locator("#upload input[type=file]").set_input_files(str(space["yes"]))
            page.locator("#upload").get_by_text(space["yes"].stem).wait_for()
            page.click("#score")
            page.get_by_text("TEST MODEL's P(Yes)").wait_for()
            page.locator("#scored img").wait_for()
            marker = page.inner_text("#vlm-marker")
            text = page.inner_text("#explanation")
            page.screenshot(path=str(tmp_path / "space-tile.png"), full_page=True)
            # A composite: the picture names the scored half.
            page.locator("#upload button[aria-label=Clear]").click()
            page.locator("#upload input[type=file]").set_input_files(str(composite))
            page.locator("#upload").get_by_text("composite").wait_for()
            page.click("#score")
            page.get_by_text("the right half was ignored").wait_for()
            page.screenshot(path=str(tmp_path / "space-composite.png"), full_page=True)
            # Clicking an example scores it.
            first = captions[0].split("·")[1].strip()
            page.locator("#examples .thumbnail-item").filter(has_text=first).click()
            page.locator("#upload").get_by_text(first).wait_for()
            page.get_by_text("A 256x512 Sentinel-2 tile.").wait_for()
            # A file over the limit: Gradio's message names the app's limit (1 MiB here).
            page.goto(space["url"])
            page.locator("#upload input[type=file]").set_input_files(str(big))
            toast = page.get_by_text("exceed the maximum allowed size of 1.0 Mb")
            toast.wait_for()
            page.screenshot(path=str(tmp_path / "space-limit.png"))
        finally:
            browser.close()
    # The page renders the Markdown, so the verdict reads "P(Yes) is 0.384: No".
    assert f"P(Yes) is {expected[0]:.3f}: {verdict}" in text, text
    assert "TEST MODEL" in marker and "random weights" in marker
    for name in ("space-tile.png", "space-composite.png", "space-limit.png"):
        with Image.open(tmp_path / name) as shot:
            assert shot.width >= 1280 and shot.height > 600


def _app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, **env: str) -> Any:
    """A fresh import of space/app.py with ``env`` set (CROPMARK_ prefix added)."""
    import importlib.util

    defaults = {
        "ADAPTER": "",
        "BASELINE": str(tmp_path / "no-baseline.json"),
        "EXAMPLES": str(tmp_path / "examples"),
    }
    for key, value in {**defaults, **env}.items():
        monkeypatch.setenv(f"CROPMARK_{key}", value)
    spec = importlib.util.spec_from_file_location(name, ROOT / "space" / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _falls_back(app: Any, cause: str) -> None:
    app.MODELS.load()
    assert app.MODELS.ready.is_set() and app.MODELS.scorer is not None, app.MODELS.status
    assert app.MODELS.status.startswith("**Offline test mode**: "), app.MODELS.status
    assert cause in app.MODELS.status, app.MODELS.status
    assert "tiny random test model, whose verdicts mean nothing" in app.MODELS.status
    assert app.MODELS.test_model == "a tiny random test model"
    # The fallback model lives in a folder of this process, not a path every Space shares.
    assert f"cropmark-tiny-{os.getpid()}-" in app.MODELS.scorer.base


def test_an_unreachable_model_falls_back_to_the_tiny_model_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(monkeypatch, tmp_path, "space_app_offline", BASE_MODEL=str(tmp_path / "no-such-model"))
    _falls_back(app, "base model")
    assert app.MODELS.baseline is None
    assert "No physics baseline" in app.MODELS.status
    # Without a baseline the page still answers, with the baseline column empty.
    tile = np.random.default_rng(0).integers(0, 255, (512, 256, 3), dtype=np.uint8)
    Image.fromarray(tile).save(tmp_path / "tile.png")
    marker, vlm, baseline, _shown, text = app.predict(str(tmp_path / "tile.png"))
    assert set(vlm) == {"Yes" + MARKED, "No" + MARKED} and baseline is None
    assert "TEST MODEL" in marker
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


def _truncated(folder: Path, name: str) -> None:
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_base_model_file_falls_back_within_seconds(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "TINY_MODEL.json").unlink()  # looks like a real model folder
    _truncated(broken, "model.safetensors")
    app = _app(monkeypatch, tmp_path, "space_app_truncated_base", BASE_MODEL=str(broken))
    _falls_back(app, "SafetensorError")


def test_a_truncated_adapter_falls_back(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space: dict[str, Any]
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(space["tmp"] / "adapter", adapter)
    _truncated(adapter, "adapter_model.safetensors")
    app = _app(
        monkeypatch, tmp_path, "space_app_truncated_adapter", BASE_MODEL=str(tiny_model), ADAPTER=str(adapter)
    )
    _falls_back(app, "SafetensorError")


def test_any_exception_from_the_loader_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, tmp_path, "space_app_raises", BASE_MODEL="org/model")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyError("model.embed_tokens.weight")

    real = app.load_scorer
    monkeypatch.setattr(
        app, "load_scorer", lambda base, *a, **k: broken() if base == "org/model" else real(base, *a, **k)
    )
    _falls_back(app, "KeyError: 'model.embed_tokens.weight'")


def test_a_load_slower_than_the_limit_falls_back_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(monkeypatch, tmp_path, "space_app_slow", BASE_MODEL="org/model", LOAD_TIMEOUT_S="1")
    release = threading.Event()
    real = app.load_scorer

    def slow(base: str, *args: Any, **kwargs: Any) -> Any:
        if base == "org/model":
            release.wait(600)  # a download that hangs
            raise TimeoutError("never answered")
        return real(base, *args, **kwargs)

    monkeypatch.setattr(app, "load_scorer", slow)
    try:
        _falls_back(app, "loading org/model took longer than 1 s (CROPMARK_LOAD_TIMEOUT_S)")
    finally:
        release.set()


def test_a_space_with_a_corrupt_adapter_answers_with_the_fallback(
    space: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    """The whole process, as on the Hub, with a corrupt adapter and no baseline file: the page says
    why, the tiles are still scored, and the baseline's column reaches gradio_client as ``{}``
    (as space/app.py's docstring says)."""
    adapter = tmp_path / "adapter"
    shutil.copytree(space["tmp"] / "adapter", adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    env = {
        "CROPMARK_BASE_MODEL": str(tiny_model),
        "CROPMARK_ADAPTER": str(adapter),
        "CROPMARK_BASELINE": str(tmp_path / "no-baseline.json"),
        "CROPMARK_EXAMPLES": str(tmp_path / "no-examples"),
    }
    with run_space(env, tmp_path / "space.log") as (url, _process):
        api = client(url)
        status = api.predict(api_name="/status")
        marker, vlm, baseline, _picture, text = api.predict(
            handle_file(str(space["yes"])), api_name="/predict"
        )
    assert status.startswith("**Offline test mode**: adapter") and "SafetensorError" in status, status
    assert "No physics baseline" in status, status
    assert "TEST MODEL" in marker and vlm["label"] in ("Yes" + MARKED, "No" + MARKED)
    assert baseline == {} and "physics baseline" not in text


def _tile_png(tmp_path: Path) -> Path:
    tile = np.random.default_rng(1).integers(0, 255, (512, 256, 3), dtype=np.uint8)
    Image.fromarray(tile).save(tmp_path / "tile.png")
    return tmp_path / "tile.png"


def test_a_copy_of_the_tiny_model_under_any_name_is_still_marked_a_test_model(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is in the model's config.json: a renamed copy, or one downloaded from a Hub,
    without the generator's side file, still says "test model" on the status and the verdict."""
    copy = tmp_path / "LFM2.5-VL-450M"
    shutil.copytree(tiny_model, copy)
    (copy / "TINY_MODEL.json").unlink()
    app = _app(monkeypatch, tmp_path, "space_app_renamed_tiny", BASE_MODEL=str(copy))
    app.MODELS.load()
    assert app.MODELS.status.startswith("**Test mode**: the VLM"), app.MODELS.status
    assert "tiny random test model with random weights" in app.MODELS.status
    marker, vlm, _baseline, _shown, text = app.predict(str(_tile_png(tmp_path)))
    assert "TEST MODEL" in marker and set(vlm) == {"Yes" + MARKED, "No" + MARKED}
    assert "TEST MODEL's P(Yes)" in text and "fine-tuned model's" not in text


def test_a_model_without_the_marker_is_served_as_the_fine_tuned_model(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the rule: a model whose config does not say "random weights" gets plain
    verdicts (so the marker above is read from the model, not put on everything)."""
    import json

    from builder.testing.tiny import RANDOM_WEIGHTS_KEY

    real = tmp_path / "model"
    shutil.copytree(tiny_model, real)
    (real / "TINY_MODEL.json").unlink()
    config = json.loads((real / "config.json").read_text())
    del config[RANDOM_WEIGHTS_KEY]
    (real / "config.json").write_text(json.dumps(config))
    app = _app(monkeypatch, tmp_path, "space_app_unmarked", BASE_MODEL=str(real))
    app.MODELS.load()
    status = app.MODELS.status
    assert status.startswith(f"Model: {real} + no adapter.") and "test model" not in status.lower(), status
    marker, vlm, _baseline, _shown, text = app.predict(str(_tile_png(tmp_path)))
    assert set(vlm) == {"Yes", "No"} and "TEST MODEL" not in marker + text
    assert "fine-tuned model's P(Yes)" in text
