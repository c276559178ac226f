"""Which modes of a private key file the hub accepts: PostgreSQL's rule for its own key."""

from __future__ import annotations

import os
import stat

import pytest

from exchange.hub import startup

HUB_UID = 10001


def _status(mode: int, *, owner: int) -> os.stat_result:
    # st_mode, st_ino, st_dev, st_nlink, st_uid, st_gid, st_size, st_atime, st_mtime, st_ctime
    return os.stat_result((stat.S_IFREG | mode, 1, 1, 1, owner, owner, 100, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "owner", "euid", "too_open"),
    [
        pytest.param(0o600, HUB_UID, HUB_UID, False, id="own-0600"),
        pytest.param(0o400, HUB_UID, HUB_UID, False, id="own-0400"),
        pytest.param(0o640, HUB_UID, HUB_UID, True, id="own-group-readable"),
        pytest.param(0o604, HUB_UID, HUB_UID, True, id="own-world-readable"),
        pytest.param(0o440, 0, HUB_UID, False, id="root-owned-read-through-group"),
        pytest.param(0o640, 0, HUB_UID, False, id="root-owned-0640"),
        pytest.param(0o660, 0, HUB_UID, True, id="root-owned-group-writable"),
        pytest.param(0o644, 0, HUB_UID, True, id="root-owned-world-readable"),
        pytest.param(0o640, 0, 0, True, id="hub-as-root-group-readable"),
        pytest.param(0o600, 0, 0, False, id="hub-as-root-0600"),
    ],
)
def test_a_private_key_may_be_read_by_the_hub_alone(
    monkeypatch: pytest.MonkeyPatch, mode: int, owner: int, euid: int, too_open: bool
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert startup._too_open(_status(mode, owner=owner)) is too_open
