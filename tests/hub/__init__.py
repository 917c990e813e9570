"""The local Hub server of the tests (``server.py``) and the account the tests publish with."""

from __future__ import annotations

# A write token of the user "tester", member of the org the tests publish under
# (``tests/conftest.py``'s ``hub`` fixture gives the server this account).
TOKEN = "hf_" + "TopSecretTokenForTests0123456789"
ORG = "cropmark-org"
