"""The local Hub server of the tests (``server.py``) and the account the tests publish with."""

from __future__ import annotations

from tests.hub.server import Account

# A write token of the user "tester", member of the org the tests publish under.
TOKEN = "hf_" + "TopSecretTokenForTests0123456789"
ORG = "cropmark-org"
ACCOUNTS = {TOKEN: Account("tester", orgs=(ORG,))}
