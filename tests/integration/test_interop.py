"""STIX, MISP and TAXII against a real hub: what agency-b received, converted on its side.

Agency-a publishes the examples; agency-b opens them through the client library and exports,
imports and serves them over TAXII 2.1 to the real ``taxii2-client`` over HTTP on a loopback
port 0.  Release controls hold through every format: a revoked item disappears from the next
answer and the next export, an expired one is gone, and TLP:RED stays out of the feed unless
the profile opts in.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from exchange.alerts.draft import Draft
from exchange_client import Client
from exchange_client.interop import (
    AlertFeed,
    TaxiiServer,
    export_misp,
    export_stix,
    import_misp,
    import_stix,
)
from exchange_client.interop.taxii import API_ROOT, COLLECTION_ID
from tests.conftest import FrozenClock
from tests.integration.test_release_client import clients  # noqa: F401 - the fixture
from tests.unit.interop.conftest import stix_errors

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "test-token-0123456789abcdef"
USER = "opencti"


def visible_to_b(name: str) -> Draft:
    """An example whose items all go to agency-b at once (so the recipient sees every field)."""
    data = Draft.from_file(EXAMPLES / name).to_dict()
    for item in data["items"]:  # type: ignore[union-attr]
        item["policy"]["audience"] = sorted({*item["policy"].get("audience", []), "agency-b"})
        item["policy"]["release"] = "IMMEDIATE"
        item["policy"].pop("embargo_until", None)
    return Draft.from_dict(data)


@pytest.mark.parametrize(
    "name",
    ["mislabelled-piperidone-shipment.yaml", "usdt-tron-fund-flow.json", "bank-wire-iban.yaml"],
)
def test_publish_open_export_import_gives_back_the_draft(
    clients: Callable[[str], Client], clock: FrozenClock, name: str  # noqa: F811
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    draft = visible_to_b(name)
    alert_id = a.publish(draft).alert_id
    opened = b.open(alert_id)
    bundle = export_stix([opened], now=clock())
    assert stix_errors(bundle) == []
    assert Draft.from_dict(import_stix(json.dumps(bundle).encode()).draft).to_dict() == draft.to_dict()
    event = export_misp(opened, now=clock())
    assert Draft.from_dict(import_misp(json.dumps(event).encode()).draft).to_dict() == draft.to_dict()


def test_withheld_and_revoked_items_leave_the_next_export(
    clients: Callable[[str], Client], clock: FrozenClock  # noqa: F811
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    alert_id = a.publish(Draft.from_file(EXAMPLES / "mislabelled-piperidone-shipment.yaml")).alert_id
    before = import_stix(json.dumps(export_stix([b.open(alert_id)], now=clock())).encode()).draft
    assert [item["id"] for item in before["items"]] == ["s1", "p1"]  # n1 is ON_REQUEST: withheld
    a.revoke(alert_id, "p1")
    after = import_stix(json.dumps(export_stix([b.open(alert_id)], now=clock())).encode()).draft
    assert [item["id"] for item in after["items"]] == ["s1"]


@dataclasses.dataclass
class Feed:
    server: TaxiiServer
    feed: AlertFeed

    @property
    def root_url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}/{API_ROOT}/"

    def collection(self, **auth: str) -> Collection:
        return Collection(f"{self.root_url}collections/{COLLECTION_ID}/", **auth)


@pytest.fixture
def taxii(clients: Callable[[str], Client], clock: FrozenClock) -> Iterator[Callable[..., Feed]]:  # noqa: F811
    started: list[TaxiiServer] = []

    def start(*, include_tlp_red: bool = False) -> Feed:
        feed = AlertFeed(clients("agency-b"), clock=clock, include_tlp_red=include_tlp_red)
        server = TaxiiServer(feed, host="127.0.0.1", port=0, username=USER, token=TOKEN)
        server.start()
        started.append(server)
        return Feed(server=server, feed=feed)

    yield start
    for server in started:
        server.stop()


def item_ids(objects: list[dict[str, Any]]) -> set[str]:
    return {
        ext["item_id"]
        for obj in objects
        for ext in (obj.get("extensions") or {}).values()
        if isinstance(ext, dict) and "item_id" in ext
    }


def test_taxii2_client_discovers_lists_and_fetches_with_basic_auth(
    clients: Callable[[str], Client], taxii: Callable[..., Feed]  # noqa: F811
) -> None:
    a = clients("agency-a")
    alert_id = a.publish(visible_to_b("bank-wire-iban.yaml")).alert_id
    feed = taxii()
    host, port = feed.server.address
    server = Server(f"http://{host}:{port}/taxii2/", user=USER, password=TOKEN)
    assert [root.url for root in server.api_roots] == [feed.root_url]
    api_root: ApiRoot = server.default
    (collection,) = api_root.collections
    assert (collection.id, collection.can_read, collection.can_write) == (COLLECTION_ID, True, False)
    envelope = collection.get_objects()
    assert stix_errors({"type": "bundle", "id": "bundle--0c2f0b1e-0d5e-4c3a-9a7b-1f2e3d4c5b6a",
                        "objects": envelope["objects"]}) == []
    assert item_ids(envelope["objects"]) == {"w1"}
    report = next(obj for obj in envelope["objects"] if obj["type"] == "report")
    assert collection.get_object(report["id"])["objects"] == [report]
    manifest = collection.get_manifest()
    assert {entry["id"] for entry in manifest["objects"]} == {obj["id"] for obj in envelope["objects"]}
    assert report["name"] == a.open(alert_id).title


def test_pagination_and_added_after(
    clients: Callable[[str], Client], taxii: Callable[..., Feed], clock: FrozenClock  # noqa: F811
) -> None:
    a = clients("agency-a")
    a.publish(visible_to_b("bank-wire-iban.yaml"))
    clock.advance(seconds=5)
    a.publish(visible_to_b("usdt-tron-fund-flow.json"))
    feed = taxii()
    collection = feed.collection(user=USER, password=TOKEN)
    everything = collection.get_objects()["objects"]
    pages = list(as_pages(collection.get_objects, per_request=7))
    assert all(len(page["objects"]) <= 7 for page in pages) and len(pages) > 2
    assert [obj["id"] for page in pages for obj in page["objects"]] == [obj["id"] for obj in everything]
    first_report = next(obj for obj in everything if obj["type"] == "report")
    later = collection.get_objects(added_after=first_report["modified"])["objects"]
    assert item_ids(later) == {"t1", "a1"}  # n1 is agency-a's own note, never sent to agency-b


def test_revoked_expired_and_red_items_leave_the_collection(
    clients: Callable[[str], Client], taxii: Callable[..., Feed], clock: FrozenClock  # noqa: F811
) -> None:
    a = clients("agency-a")
    alert_id = a.publish(visible_to_b("mislabelled-piperidone-shipment.yaml")).alert_id
    feed = taxii()
    collection = feed.collection(user=USER, password=TOKEN)
    assert item_ids(collection.get_objects()["objects"]) == {"s1", "p1"}  # n1 is TLP:RED
    red = taxii(include_tlp_red=True).collection(user=USER, password=TOKEN)
    assert item_ids(red.get_objects()["objects"]) == {"s1", "p1", "n1"}

    a.revoke(alert_id, "p1")
    assert item_ids(collection.get_objects()["objects"]) == {"s1"}
    clock.advance(days=800)  # past s1's expires_at (2027-06-01)
    assert item_ids(collection.get_objects()["objects"]) == set()


def raw_get(feed: Feed, path: str, *, headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(feed.root_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["Content-Type"]


BEARER = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/taxii+json;version=2.1"}


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("collections/", {"Accept": "application/taxii+json;version=2.1"}, 401),
        ("collections/", {**BEARER, "Authorization": "Bearer wrong"}, 401),
        ("collections/", {**BEARER, "Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()}, 401),
        ("collections/", {**BEARER, "Accept": "application/xml"}, 406),
        (f"collections/{COLLECTION_ID}/objects/?next=garbage", BEARER, 400),
        (f"collections/{COLLECTION_ID}/objects/?limit=0", BEARER, 400),
        (f"collections/{COLLECTION_ID}/objects/?limit=abc", BEARER, 400),
        (f"collections/{COLLECTION_ID}/objects/?added_after=yesterday", BEARER, 400),
        (f"collections/{COLLECTION_ID}/objects/?colour=red", BEARER, 400),
        ("collections/not-a-collection/objects/", BEARER, 404),
        (f"collections/{COLLECTION_ID}/objects/report--0/", BEARER, 404),
    ],
)
def test_bad_requests_get_taxii_error_messages(
    taxii: Callable[..., Feed], path: str, headers: dict[str, str], status: int
) -> None:
    feed = taxii()
    code, body, content_type = raw_get(feed, path, headers=headers)
    assert code == status
    assert content_type == "application/taxii+json;version=2.1"
    assert set(body) == {"title", "description", "http_status"} and body["http_status"] == str(status)


def test_the_real_client_sees_a_refusal_not_data_without_the_token(taxii: Callable[..., Feed]) -> None:
    collection = taxii().collection(user=USER, password="wrong-password")
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        collection.get_objects()
    assert "401" in str(raised.value)
