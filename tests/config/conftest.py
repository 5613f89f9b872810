"""Config tests never see the runner's systemd credentials."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
