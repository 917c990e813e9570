"""The command line: one-line errors with exit status 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

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


_RAY_BUILD = ["build", "--corpus", "CORPUS", "--out", "OUT", "--version", "1.0.0", "--engine", "ray"]


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
        (
            ["build", "--corpus", "CORPUS", "--out", "OUT", "--version", "1.0.0", "--engine", "spark"],
            "error: cropmark build: argument --engine: invalid choice: 'spark'",
        ),
        (
            [*_RAY_BUILD, "--workers", "2"],
            "error: --workers sets the local engine's processes; with --engine ray the cluster's CPUs",
        ),
        (
            ["build", "--corpus", "CORPUS", "--out", "OUT", "--version", "1.0.0", "--ray-address", "auto"],
            "error: a Ray address is for --engine ray",
        ),
        (
            [*_RAY_BUILD, "--ray-address", "CLOSED"],
            "error: cannot reach the Ray cluster at CLOSED (Connection refused)",
        ),
        (
            [*_RAY_BUILD, "--ray-address", "auto"],
            "error: cannot start or reach Ray at auto: Could not find any running Ray instance",
        ),
        (["audit", "/nonexistent/release"], "error: release folder /nonexistent/release does not exist"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, small_corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with socket.socket() as closed:  # a port of this machine that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    subs = {
        "CORPUS": str(small_corpus),
        "OUT": str(tmp_path / "out"),
        "EMPTY": str(tmp_path / "empty"),
        "CLOSED": f"127.0.0.1:{port}",
    }
    args = [subs.get(a, a) for a in args]
    message = message.replace("EMPTY", subs["EMPTY"]).replace("CLOSED", subs["CLOSED"])
    if "Could not find any running Ray instance" in message and _ray_running():
        # Ray's "auto" finds a cluster by its gcs_server process, wherever it was started from.
        pytest.skip("a Ray instance runs on this machine: --ray-address auto would join it")
    proc = _run(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0").exists()


def _ray_running() -> bool:
    """Whether a Ray cluster's GCS server runs on this machine (as ``ray start`` leaves one)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "gcs_server":
                return True
        except OSError:
            continue
    return False


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _run(
        "--debug", "build", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path), "--version", "1.0.0"
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_an_interrupted_sample_leaves_no_partial_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sample`` writes beside the folder and renames the whole corpus into place: Ctrl-C (or an
    error) part-way leaves the folder as it was (here: empty) and nothing beside it."""
    from builder import cli
    from builder.testing import sample

    real = sample._Writer.composite
    written: list[str] = []

    def interrupted(self: object, *args: object) -> str:
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(real(self, *args))  # type: ignore[arg-type]
        return written[-1]

    monkeypatch.setattr(sample._Writer, "composite", interrupted)
    out = tmp_path / "corpus"
    out.mkdir()
    assert cli.main(["sample", str(out)]) == 130
    assert (
        len(written) == 5 and list(out.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["corpus"]
    )
    written.clear()
    assert cli.main(["sample", str(tmp_path / "new" / "corpus")]) == 130  # a new folder: removed
    assert [p.name for p in tmp_path.iterdir()] == ["corpus", "new"] and list(
        (tmp_path / "new").iterdir()
    ) == []
    monkeypatch.setattr(sample._Writer, "composite", real)
    assert cli.main(["sample", str(out), "--small"]) == 0
    assert (out / "sft" / "train.jsonl").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [
        "corpus",
        "new",
    ]
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "new")  # a link to an empty folder is that folder
    assert cli.main(["sample", str(linked), "--small"]) == 0
    assert (tmp_path / "new" / "sft" / "train.jsonl").is_file() and linked.is_symlink()


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


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    args = ["build", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path), "--version", "1.0.0"]
    proc = _run(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "CorpusNotFoundError" in proc.stderr


def test_version_is_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cropmark {version('cropmark')}"


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    page = capsys.readouterr().out
    for markup in ("``", ":class:", ":func:", ":mod:", "~builder"):
        assert markup not in page, markup
    for option in ("--version", "--debug", "--quiet"):
        assert option in page


def test_every_argument_of_every_command_has_help() -> None:
    import argparse

    from builder.cli import parser

    missing: list[str] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(parser(), "cropmark")
    assert missing == []


def _in_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``cropmark ARGS`` with standard error on a pseudo-terminal; return its status and stderr."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 x 0 characters; tqdm draws nothing that narrow.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=dict(os.environ),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_only_and_never_with_quiet(
    _small_corpus_master: Path, tmp_path: Path
) -> None:
    corpus = str(_small_corpus_master)
    build = ["build", "--corpus", corpus, "--out", "out", "--version", "1.0.0"]
    code, shown = _in_a_terminal(build, tmp_path)
    assert code == 0
    for bar in ("read composites", "cut and gate", "audit"):
        assert f"{bar}: " in shown, (bar, shown[-500:])
    release = "out/cropmark-disambiguator-s2/1.0.0"
    code, shown = _in_a_terminal(["audit", release], tmp_path)
    assert code == 0 and "audit: " in shown and "/32 " in shown and "tile/s" in shown
    code, shown = _in_a_terminal(["--quiet", "audit", release], tmp_path)
    assert code == 0 and shown == ""
    code, shown = _in_a_terminal(
        [*build[:4], "layout-out", *build[5:], "--layout", "parquet", "--quiet"], tmp_path
    )
    assert code == 0 and shown == ""
    code, shown = _in_a_terminal([*build[:4], "layout-out2", *build[5:], "--layout", "hdf5"], tmp_path)
    assert code == 0 and "write hdf5" in shown
    # Not a terminal: nothing but the summary on standard output.
    piped = _run(*build[:4], str(tmp_path / "piped"), *build[5:])
    assert piped.returncode == 0 and piped.stderr == ""


def test_quiet_also_silences_huggingface_hub_upload_bars() -> None:
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    from builder import progress

    try:
        progress.set_quiet(True)
        assert are_progress_bars_disabled()
    finally:
        progress.set_quiet(False)
        enable_progress_bars()


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("build", "interrupted: the previous release, if any, is untouched"),
        ("audit", "interrupted: audit stopped before it finished"),
    ],
)
def test_ctrl_c_while_the_commands_load_is_one_line(
    command: str, said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The parser imports every command's module (most of a second): Ctrl-C there was a traceback.
    from builder import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "parser", interrupted)
    assert cli.main(["--quiet", command, "x"]) == 130
    assert capsys.readouterr().err.splitlines() == [said]


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "PYTHONUNBUFFERED"])
def test_a_reader_that_goes_away_ends_the_output_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], buffered: bool
) -> None:
    """``cropmark build ... | head -1``: the release is put in place, and when the reader of the
    standard output has gone, the command ends silently with the status of a process that
    SIGPIPE ends (141), not an error line, whether Python buffers the output (its default for
    a pipe: the failure then comes when it is flushed) or not; a full device is one line that
    says the output could not be written; a broken pipe that is not the output stays an error."""
    import os

    from tests.data.factory import TinyCorpus

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    corpus = TinyCorpus(tmp_path / "corpus").write()
    command = [sys.executable, "-m", "builder.cli", "build", "--corpus", str(corpus), "--workers", "1"]

    def build_into(out: str, stdout: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--out", str(tmp_path / out), "--version", "1.0.0"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            env=env,
        )

    read, write = os.pipe()
    os.close(read)  # no reader: the build's output meets EPIPE
    try:
        done = build_into("out", write)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
    assert (
        tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0" / "data" / "train" / "metadata.csv"
    ).is_file()
    if buffered:  # unbuffered, the failed write is the command's own one-line error
        with open("/dev/full", "w") as full:
            done = build_into("out2", full)
        assert done.returncode == 2
        assert done.stderr == (
            "error: the standard output could not be written ([Errno 28] No space left on device); "
            "what the command did stands\n"
        )
        assert (tmp_path / "out2" / "cropmark-disambiguator-s2" / "1.0.0" / "README.md").is_file()

    from builder import cli
    from builder.testing import sample

    def broken(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")  # a worker's or a socket's pipe; the output is fine

    monkeypatch.setattr(sample, "generate", broken)
    assert cli.main(["sample", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == "error: [Errno 32] Broken pipe\n"


def test_a_build_without_standard_error_draws_no_bar(tmp_path: Path) -> None:
    """``cropmark build ... 2>&-``: with standard error closed (Python's sys.stderr is None) the
    build runs, without progress bars; it failed with tqdm's AttributeError and no word."""
    import os

    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    out = tmp_path / "out"
    code = (
        "import sys; from builder.cli import main; "
        f"sys.exit(main(['build', '--corpus', {str(corpus)!r}, '--out', {str(out)!r}, '--version', '1.0.0', "
        "'--workers', '1']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,
        close_fds=True,
        pass_fds=(),
        preexec_fn=lambda: os.close(2),
        check=False,
    )
    assert done.returncode == 0, done.stdout
    assert (out / "cropmark-disambiguator-s2" / "1.0.0" / "README.md").is_file()


def test_a_build_with_its_standard_streams_closed_opens_no_file_on_them(tmp_path: Path) -> None:
    """``cropmark build ... >&- 2>&-``: a file the build opens takes the lowest free descriptor,
    so its lock file or a spill took descriptors 1 and 2, where anything writing to standard
    output or error by number (a C library's warning) would have written. The command opens
    /dev/null on them first; it builds, prints nowhere, and exits 0."""
    import json
    import os

    from tests.data.factory import TinyCorpus

    corpus = TinyCorpus(tmp_path / "corpus").write()
    out, seen = tmp_path / "out", tmp_path / "seen.json"
    code = f"""
import json, os, sys
from builder.release import build as release

def _target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{{fd}}")
    except FileNotFoundError:
        return "closed"

real = release._write_tiles
def spy(*args, **kwargs):  # mid-build: the lock is held, the spills are open
    links = [_target(fd) for fd in (0, 1, 2)]
    with open({str(seen)!r}, "w") as f:
        json.dump(links, f)
    return real(*args, **kwargs)
release._write_tiles = spy
sys.argv = ["cropmark", "build", "--corpus", {str(corpus)!r}, "--out", {str(out)!r}, "--version", "1.0.0",
            "--workers", "1"]
from builder.cli import main
sys.exit(main())
"""

    def close_streams() -> None:
        for fd in (0, 1, 2):
            os.close(fd)

    done = subprocess.run([sys.executable, "-c", code], preexec_fn=close_streams, check=False)
    assert done.returncode == 0
    assert json.loads(seen.read_text()) == [os.devnull] * 3
    assert (out / "cropmark-disambiguator-s2" / "1.0.0" / "README.md").is_file()
