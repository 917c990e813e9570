"""One Hub client: the only reader of ``HF_ENDPOINT``, and every download goes through it.

The source checks read the code (``ast``), not its text, so a message that names
``HF_ENDPOINT`` (``check the id, HF_ENDPOINT and your network``) is not a reader of it.
The downloads run the real huggingface_hub client against the local Hub server.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.errors import ReleaseNotFoundError
from builder.hub import client
from builder.model import data
from tests.hub import ORG

ROOT = Path(__file__).resolve().parent.parent
CLIENT = Path(client.__file__).resolve()
# What only the client may take from huggingface_hub: the functions that reach the Hub and
# the client class (an annotation under ``if TYPE_CHECKING:`` is not a use).
HUB_DOORS = frozenset({"HfApi", "snapshot_download", "hf_hub_download", "get_token", "get_session"})


def _sources(root: Path = ROOT) -> Iterator[Path]:
    for folder in ("builder", "space", "scripts"):
        yield from sorted((root / folder).rglob("*.py"))


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            inside |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return inside


def _readers_of(name: str, root: Path = ROOT) -> set[Path]:
    """The source files that hold the string ``name`` as a whole constant (a key, an argument)."""
    found = set()
    for path in _sources(root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.Constant) and n.value == name for n in ast.walk(tree)):
            found.add(path.resolve())
    return found


def _hub_doors() -> dict[Path, set[str]]:
    """Per source file, the Hub-reaching names it imports from huggingface_hub at run time."""
    found: dict[Path, set[str]] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_only(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] == "huggingface_hub"
                and id(node) not in typing_only
            ):
                names = {alias.name for alias in node.names} & HUB_DOORS
                if names:
                    found.setdefault(path.resolve(), set()).update(names)
    return found


def test_the_client_is_the_one_reader_of_hf_endpoint() -> None:
    assert _readers_of("HF_ENDPOINT") == {CLIENT}


def test_only_the_client_imports_what_reaches_the_hub() -> None:
    doors = _hub_doors()
    assert set(doors) == {CLIENT}, {str(p.relative_to(ROOT)): sorted(n) for p, n in doors.items()}
    assert {"HfApi", "snapshot_download", "hf_hub_download", "get_token"} <= doors[CLIENT]


def test_the_readers_check_sees_a_reader_outside_the_client(tmp_path: Path) -> None:
    (tmp_path / "space").mkdir()
    (tmp_path / "space" / "app.py").write_text(
        'import os\nURL = os.environ.get("HF_ENDPOINT")\n', encoding="utf-8"
    )
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "says.py").write_text('print("check HF_ENDPOINT")\n', encoding="utf-8")
    assert _readers_of("HF_ENDPOINT", tmp_path) == {(tmp_path / "space" / "app.py").resolve()}


def _dataset_with_metadata(hub: Any) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    from tests.hub import TOKEN

    repo = f"{ORG}/downloads"
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(repo, repo_type="dataset")
    rows = b"file_name,label\n"
    api.create_commit(
        repo, [CommitOperationAdd("data/eval/metadata.csv", rows)], commit_message="m", repo_type="dataset"
    )
    return repo


def test_downloads_follow_hf_endpoint_as_set_after_import(hub: Any) -> None:
    """The fixture sets HF_ENDPOINT after huggingface_hub was imported: the client reads it per call."""
    repo = _dataset_with_metadata(hub)
    assert client.endpoint() == hub.url
    path = client.download_file(repo, "data/eval/metadata.csv", repo_type="dataset")
    assert Path(path).read_bytes() == b"file_name,label\n"
    folder = client.download_repo(repo, repo_type="dataset")
    assert (folder / "data" / "eval" / "metadata.csv").read_bytes() == b"file_name,label\n"


def test_a_download_the_hub_does_not_serve_is_one_line(hub: Any) -> None:
    with pytest.raises(client.DownloadError) as failed:
        client.download_repo(f"{ORG}/no-such-dataset", repo_type="dataset")
    assert "\n" not in str(failed.value) and str(failed.value)
    with pytest.raises(
        ReleaseNotFoundError, match=r"could not be downloaded from the Hub \(.+\); check the id"
    ):
        data.resolve(f"{ORG}/no-such-dataset")
