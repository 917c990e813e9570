"""The local Hub server refuses what the Hub refuses (its docstring's table, one test per row).

The real huggingface_hub client talks to it; raw requests are used only where the client would
stop a bad request before sending it.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.golden import refresh
from tests.hub import ORG, TOKEN
from tests.hub.server import RULES, Account, Fault, HubServer, metadata_errors, serve, tag_name_problem

READ_ONLY = "hf_" + "ReadOnlyTokenForTests0123456"
STRANGER = "hf_" + "StrangersTokenForTests012345"


@pytest.fixture
def server() -> Iterator[HubServer]:
    accounts = {
        TOKEN: Account("tester", (ORG,)),
        READ_ONLY: Account("reader", (ORG,), write=False),
        STRANGER: Account("stranger"),
    }
    with serve(accounts) as running:
        yield running


def _api(server: HubServer, token: str | None = TOKEN) -> HfApi:
    return HfApi(endpoint=server.url, token=token or False)


def _status(call: object) -> int:
    with pytest.raises(HfHubHTTPError) as failed:
        call()  # type: ignore[operator]
    status: int = failed.value.response.status_code
    return status


# -- tokens ---------------------------------------------------------------------------------------


def test_writes_need_a_write_token_of_the_namespace(server: HubServer) -> None:
    repo = f"{ORG}/d"
    assert _status(lambda: _api(server, None).create_repo(repo, repo_type="dataset")) == 401
    assert _status(lambda: _api(server, "hf_" + "NotAToken0123456789").create_repo(repo)) == 401
    assert _status(lambda: _api(server, STRANGER).create_repo(repo)) == 403
    assert _status(lambda: _api(server, READ_ONLY).create_repo(repo)) == 403
    _api(server).create_repo(repo, repo_type="dataset")
    upload = CommitOperationAdd("a.txt", b"a\n")
    for token, status in ((None, 401), (STRANGER, 403), (READ_ONLY, 403)):
        client = _api(server, token)
        commit = functools.partial(
            client.create_commit, repo, [upload], commit_message="x", repo_type="dataset"
        )
        assert _status(commit) == status
    _api(server).create_commit(repo, [upload], commit_message="x", repo_type="dataset")
    assert server.files("dataset", repo)["a.txt"] == b"a\n"
    assert _api(server, STRANGER).list_repo_files(repo, repo_type="dataset") == [".gitattributes", "a.txt"]


def test_a_private_repo_is_invisible_outside_its_namespace(server: HubServer) -> None:
    _api(server).create_repo(f"{ORG}/secret", private=True)
    assert server.repo("model", f"{ORG}/secret").private
    assert _status(lambda: _api(server, STRANGER).model_info(f"{ORG}/secret")) == 404
    assert _status(lambda: _api(server, None).model_info(f"{ORG}/secret")) == 404
    assert _api(server, READ_ONLY).model_info(f"{ORG}/secret").id == f"{ORG}/secret"


# -- README metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "yaml", "message"),
    [
        (
            "dataset",
            "license: cdla-permissive-3.0",
            '"license" must be one of the Hub\'s licence identifiers',
        ),
        ("dataset", "task_categories: [image-classificaton]", '"task_categories" must be one of'),
        ("dataset", "size_categories: [n>1M]", '"size_categories" must be one of'),
        ("model", "pipeline_tag: cropmark-detection", '"pipeline_tag" must be one of'),
        ("space", "sdk: streamlit", '"sdk" must be one of'),
        ("model", "license: [mit", "Invalid YAML"),
    ],
)
def test_readme_metadata_is_validated_against_the_hubs_lists(
    server: HubServer, kind: str, yaml: str, message: str
) -> None:
    readme = f"---\n{yaml}\n---\n# Card\n"
    response = httpx2.post(f"{server.url}/api/validate-yaml", json={"content": readme, "repoType": kind})
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):  # what huggingface_hub raises
        _api(server).create_repo(f"{ORG}/c", repo_type=kind, space_sdk="gradio" if kind == "space" else None)
        _api(server).create_commit(
            f"{ORG}/c", [CommitOperationAdd("README.md", readme.encode())], commit_message="x", repo_type=kind
        )


def test_a_commit_whose_readme_the_hub_refuses_is_refused(server: HubServer) -> None:
    """The commit endpoint checks the README too (a client that skips validate-yaml)."""
    _api(server).create_repo(f"{ORG}/d", repo_type="dataset")
    readme = base64.b64encode(b"---\nlicense: cdla-permissive-3.0\n---\n").decode()
    lines = [
        {"key": "header", "value": {"summary": "x", "description": ""}},
        {"key": "file", "value": {"path": "README.md", "content": readme, "encoding": "base64"}},
    ]
    response = httpx2.post(
        f"{server.url}/api/datasets/{ORG}/d/commit/main",
        content="\n".join(json.dumps(line) for line in lines).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400 and "Invalid metadata in README.md" in response.json()["error"]
    assert server.stats.commits == 0


def test_the_projects_own_cards_pass_the_hubs_rules() -> None:
    cards = refresh.rendered()
    assert metadata_errors(cards["dataset_card.md"], "dataset") == []
    assert metadata_errors(cards["model_card.md"], "model") == []
    assert metadata_errors(cards["space_readme.md"], "space") == []


def test_the_rules_name_their_public_sources() -> None:
    rules = json.loads((Path(__file__).parent / "hub" / "hub_rules.json").read_text())
    assert set(rules["sources"]) == {k for k in rules if k != "sources"}
    assert all("huggingface" in source or "datasets" in source for source in rules["sources"].values())
    assert "cdla-permissive-2.0" in RULES["licenses"] and "image-classification" in RULES["task_categories"]


# -- limits and names -----------------------------------------------------------------------------


def test_more_than_10000_entries_in_a_folder_are_refused(server: HubServer) -> None:
    api = _api(server)
    api.create_repo(f"{ORG}/many", repo_type="dataset")
    operations = [
        CommitOperationAdd(f"data/{i:05d}.txt", b"%d\n" % i) for i in range(RULES["files_per_folder"] + 1)
    ]
    with pytest.raises(HfHubHTTPError, match="Too many entries in folder 'data': 10001"):
        api.create_commit(f"{ORG}/many", operations, commit_message="x", repo_type="dataset")
    api.create_commit(
        f"{ORG}/many", operations[:-1], commit_message="x", repo_type="dataset"
    )  # 10,000 is allowed
    assert len(server.files("dataset", f"{ORG}/many")) == 10_001  # with .gitattributes at the root


@pytest.mark.parametrize(
    "name",
    [
        "v1..0",
        "v 1",
        "v1~1",
        "v1^",
        "v1:0",
        "v1?",
        "v1*",
        "v[1]",
        "-v1",
        ".v1",
        "v1/",
        "v1.",
        "v1.lock",
        "v@{1}",
        "@",
        "",
    ],
)
def test_tag_names_follow_gits_rules(server: HubServer, name: str) -> None:
    assert tag_name_problem(name) is not None
    _api(server).create_repo(f"{ORG}/t")
    assert _status(lambda: _api(server).create_tag(f"{ORG}/t", tag=name)) == 400
    assert server.repo("model", f"{ORG}/t").tags == {}


def test_a_tag_is_created_once(server: HubServer) -> None:
    _api(server).create_repo(f"{ORG}/t")
    _api(server).create_tag(f"{ORG}/t", tag="v1.0.0")
    assert _status(lambda: _api(server).create_tag(f"{ORG}/t", tag="v1.0.0")) == 409


# -- faults, pages, protocol ----------------------------------------------------------------------


def test_injected_5xx_are_html_and_429_carries_retry_after(server: HubServer) -> None:
    server.inject(Fault("GET", r"/api/whoami-v2$", status=502))
    server.inject(Fault("GET", r"/api/whoami-v2$", status=429, retry_after=7))  # once the first is spent
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = httpx2.get(f"{server.url}/api/whoami-v2", headers=auth)
    assert first.status_code == 502 and first.headers["Content-Type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in first.text
    second = httpx2.get(f"{server.url}/api/whoami-v2", headers=auth)
    assert second.status_code == 429 and second.headers["Retry-After"] == "7"
    assert second.headers["RateLimit"] == '"api";r=0;t=7'
    assert httpx2.get(f"{server.url}/api/whoami-v2", headers=auth).json()["name"] == "tester"


def test_tree_listings_are_paginated_with_link_headers(server: HubServer) -> None:
    api = _api(server)
    api.create_repo(f"{ORG}/p", repo_type="dataset")
    api.create_commit(
        f"{ORG}/p",
        [CommitOperationAdd(f"f{i}.txt", b"x") for i in range(12)],
        commit_message="x",
        repo_type="dataset",
    )
    server.state.page_size = 5
    page = httpx2.get(f"{server.url}/api/datasets/{ORG}/p/tree/main", params={"recursive": "true"})
    assert len(page.json()) == 5 and 'rel="next"' in page.headers["Link"]
    listed = [f.path for f in api.list_repo_tree(f"{ORG}/p", repo_type="dataset", recursive=True)]
    assert len(listed) == 13 and len({*listed}) == 13


def test_xet_is_not_served_and_is_counted(server: HubServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx2.get(f"{server.url}/api/datasets/{ORG}/d/xet-write-token/main", headers=auth)
    assert response.status_code == 404 and server.stats.xet_requests == 1
