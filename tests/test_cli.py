"""The command line: one-line errors with exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True)


def test_build_then_audit(small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--corpus", str(small_corpus), "--out", str(tmp_path), "--version", "1.0.0"]) == 0
    out = capsys.readouterr().out
    assert "published      train 24" in out and "published      eval 8" in out
    assert "sibling_duplicate" in out and "audit          passed (0 findings)" in out
    release = tmp_path / "cropmark-disambiguator-s2" / "1.0.0"
    assert main(["audit", str(release)]) == 0
    assert "audit passed" in capsys.readouterr().out
    (release / "NOTICE.md").write_text("site at 52.12345, -1.54321\n")
    assert main(["audit", str(release)]) == 1
    out = capsys.readouterr().out
    assert "FINDING NOTICE.md:1: coordinate pair-like string 52.1…" in out  # masked, never in full
    assert "52.12345" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["build", "--corpus", "/nonexistent/corpus", "--out", "OUT", "--version", "1.0.0"],
            "error: corpus folder /nonexistent/corpus does not exist",
        ),
        (
            ["build", "--corpus", "CORPUS", "--out", "OUT", "--version", "one"],
            "error: version 'one' is not semantic",
        ),
        (
            ["build", "--corpus", "EMPTY", "--out", "OUT", "--version", "1.0.0"],
            "error: corpus EMPTY has no manifest for split 'train'",
        ),
        (
            ["build", "--corpus", "CORPUS", "--out", "OUT", "--version", "1.0.0", "--workers", "0"],
            "error: workers=0; use 1 or more",
        ),
        (["audit", "/nonexistent/release"], "error: release folder /nonexistent/release does not exist"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, small_corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    subs = {"CORPUS": str(small_corpus), "OUT": str(tmp_path / "out"), "EMPTY": str(tmp_path / "empty")}
    args = [subs.get(a, a) for a in args]
    message = message.replace("EMPTY", subs["EMPTY"])
    proc = _run(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _run(
        "--debug", "build", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path), "--version", "1.0.0"
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_sample_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    proc = _run("sample", str(tmp_path))
    assert proc.returncode == 2 and "exists and is not empty" in proc.stderr


def test_no_file_of_the_repository_points_at_notes_its_users_do_not_have() -> None:
    """Comments and docs cite public sources, never the maintainers' own notes folder."""
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    private = ("FACTS" + ".md", "STYLE" + ".md", "../" + "shared", "/work/" + "shared")
    found = []
    for name in listed.stdout.decode().split("\0"):
        path = root / name
        if not name or not path.is_file() or path.suffix in {".jpg", ".png", ".parquet", ".safetensors"}:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{name}: {word}" for word in private if word in text]
    assert found == []
