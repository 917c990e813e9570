"""Start ``space/app.py`` on loopback in a subprocess, as the Space would run it.

Used by tests/test_space.py and benchmarks/bench_space.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def run_space(
    env: dict[str, str],
    log: Path,
    timeout: float = 180.0,
    app: Path = ROOT / "space" / "app.py",
    offline: bool = True,
) -> Iterator[str]:
    """Launch ``app`` (the repository's by default) with ``env`` added; yield its URL once the
    models are loaded. ``offline`` sets ``HF_HUB_OFFLINE=1`` (which blocks loopback too)."""
    from gradio_client import Client

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
            client = None
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the Space exited with {process.returncode}: {log.read_text()[-2000:]}"
                    )
                try:
                    client = client or Client(url, verbose=False)
                    if not client.predict(api_name="/status").startswith("Loading"):
                        break
                except Exception:  # not listening yet
                    client = None
                time.sleep(0.5)
            else:
                raise RuntimeError(f"the Space did not come up in {timeout} s: {log.read_text()[-2000:]}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
