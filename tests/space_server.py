"""Start ``space/app.py`` on loopback in a subprocess, as the Space would run it, and call it.

Used by tests/test_space.py and benchmarks/bench_space.py. Clients get generous
timeouts: a busy machine makes a request slow, never wrong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600.0  # per HTTP request; a loaded 2-core machine can take minutes, a test must not fail on it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def client(url: str, **kwargs: Any) -> Any:
    """A ``gradio_client.Client`` made the way ``space/app.py``'s docstring tells users to (one
    SSL context for all of its calls), with the generous timeout of every test client."""
    import httpx
    from gradio_client import Client

    kwargs.setdefault("ssl_verify", httpx.create_ssl_context())
    return Client(url, verbose=False, httpx_kwargs={"timeout": TIMEOUT_S}, **kwargs)


def default_client(url: str) -> Any:
    """A ``gradio_client.Client`` with gradio_client's defaults (as the page's "Use via API"
    shows it), with the generous timeout of every test client."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": TIMEOUT_S})


@contextmanager
def run_space(
    env: dict[str, str],
    log: Path,
    timeout: float = 900.0,
    app: Path = ROOT / "space" / "app.py",
    offline: bool = True,
    wait_ready: bool = True,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Launch ``app`` (the repository's by default) with ``env`` added; yield its URL and
    process once it answers (and, with ``wait_ready``, once its models are loaded).
    ``offline`` sets ``HF_HUB_OFFLINE=1`` (which blocks loopback too)."""
    port = free_port()
    full = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **env,
    }
    if offline:
        full["HF_HUB_OFFLINE"] = "1"
    else:
        full.pop("HF_HUB_OFFLINE", None)
    url = f"http://127.0.0.1:{port}/"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(app)], env=full, cwd=app.parent, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            api = None
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the Space exited with {process.returncode}: {log.read_text()[-2000:]}"
                    )
                try:
                    api = api or client(url)
                    if not wait_ready or not api.predict(api_name="/status").startswith("Loading"):
                        break
                except Exception:  # not listening yet
                    api = None
                time.sleep(0.5)
            else:
                raise RuntimeError(f"the Space did not come up in {timeout} s: {log.read_text()[-2000:]}")
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _GradioHttp:
    """What both HTTP callers share: one httpx client (one connection pool, one SSL context),
    the upload, and fetching the output files."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/") + "/gradio_api/"
        self.http = httpx.Client(timeout=TIMEOUT_S)

    def upload(self, path: Path) -> str:
        """The Space's path of the uploaded file; raises RuntimeError when the upload is refused."""
        with path.open("rb") as handle:
            response = self.http.post(self.url + "upload", files=[("files", (path.name, handle))])
        if response.status_code != 200:
            raise RuntimeError(f"upload refused ({response.status_code}): {response.text}")
        return str(response.json()[0])

    def fetch(self, outputs: list[Any], download: bool) -> list[Any]:
        """Download the output files (as the page shows them) and return ``outputs``."""
        if download:
            for item in outputs:
                if isinstance(item, dict) and item.get("url"):
                    self.http.get(item["url"]).raise_for_status()
        return outputs

    def close(self) -> None:
        self.http.close()


class BrowserClient(_GradioHttp):
    """Calls an endpoint the way the page does: upload, join the queue, read the event stream
    as it arrives, fetch the output files.

    ``gradio_client`` polls its event queue every 50 ms (``gradio_client/utils.py``), which
    adds tens of milliseconds to every call that a browser does not pay; this client, like a
    browser, keeps one connection pool (and one SSL context) for all of its calls.
    """

    def __init__(self, url: str, api_name: str = "predict") -> None:
        super().__init__(url)
        config = self.http.get(url.rstrip("/") + "/config").json()
        self.fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)

    def predict(self, path: Path, download: bool = True) -> list[Any]:
        """The endpoint's outputs for one uploaded file; raises RuntimeError with the app's message."""
        uploaded = self.upload(path)
        session = uuid.uuid4().hex
        data = [{"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}]
        self.http.post(
            self.url + "queue/join",
            json={"data": data, "fn_index": self.fn_index, "session_hash": session, "event_data": None},
        ).raise_for_status()
        message: dict[str, Any] = {}
        with self.http.stream("GET", self.url + "queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        break
        output = message.get("output", {})
        if not message.get("success"):
            raise RuntimeError(output.get("error") or str(output))
        return self.fetch(output["data"], download)


class HttpApiClient(_GradioHttp):
    """Calls an endpoint through Gradio's HTTP API, as Gradio's "view API" page documents for
    any language: upload the file, ``POST /gradio_api/call/<api_name>`` for an event id, read
    ``GET /gradio_api/call/<api_name>/<event_id>``'s event stream to its ``complete`` event,
    fetch the output files. One connection pool (and one SSL context) for all calls."""

    def __init__(self, url: str, api_name: str = "predict") -> None:
        super().__init__(url)
        self.call = f"{self.url}call/{api_name}"

    def predict(self, path: Path, download: bool = True) -> list[Any]:
        """The endpoint's outputs for one uploaded file; raises RuntimeError with the app's message."""
        return self.score(self.upload(path), download)

    def score(self, uploaded: str, download: bool = True) -> list[Any]:
        """The endpoint's outputs for a path on the Space, with the body ``space/app.py``'s
        docstring gives to curl; raises RuntimeError with the app's message."""
        data = [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}]
        started = self.http.post(self.call, json={"data": data})
        started.raise_for_status()
        event, payload = "", ""
        with self.http.stream("GET", f"{self.call}/{started.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line[5:].strip()
                    break
        if event != "complete":
            raise RuntimeError(payload or f"the event stream ended with {event!r}")
        return self.fetch(json.loads(payload), download)
