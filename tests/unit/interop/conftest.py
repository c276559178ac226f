"""Opened alerts built locally from drafts, as :meth:`Client.open` returns them for a recipient."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stix2validator import ValidationOptions, validate_parsed_json

from exchange.alerts.draft import Draft
from exchange.v1 import payloads_pb2
from exchange_client import OpenedAlert, OpenedItem
from exchange_client._internal.models import ItemPolicy, grading_label

PUBLISHED = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def opened_alert(
    draft: Draft,
    *,
    originator: str = "agency-a",
    alert_id: str = "5f0c7a5e-9d7e-4d3b-8a61-2b7e0d3c1a11",
    statuses: dict[str, str] | None = None,
    published_at: datetime = PUBLISHED,
) -> OpenedAlert:
    """``draft`` as its recipient opens it: every item VISIBLE unless ``statuses`` says other."""
    kind = payloads_pb2.Summary.Kind.Name(draft.kind) if draft.kind else None
    items = []
    for item in draft.items:
        status = (statuses or {}).get(item.id, "VISIBLE")
        items.append(
            OpenedItem(
                id=item.id,
                status=status,
                policy=ItemPolicy.from_proto(item.policy),
                payload=item.payload if status in ("VISIBLE", "INVALID") else None,
            )
        )
    return OpenedAlert(
        alert_id=alert_id,
        originator=originator,
        version=1,
        kind=kind,
        title=draft.title,
        grading=grading_label(draft.grading),
        operator=draft.operator,
        manifest_hash=b"\x01" * 32,
        published_at=published_at,
        created_at=published_at,
        items=tuple(items),
    )


def with_status(alert: OpenedAlert, item_id: str, status: str) -> OpenedAlert:
    items = tuple(
        replace(item, status=status, payload=None) if item.id == item_id else item
        for item in alert.items
    )
    return replace(alert, items=items)


def stix_errors(bundle: Any) -> list[str]:
    """Every error stix2-validator finds in ``bundle`` (warnings are not errors)."""
    results = validate_parsed_json(json.loads(json.dumps(bundle)), ValidationOptions(version="2.1"))
    results = results if isinstance(results, list) else [results]
    return [str(error) for result in results for error in result.errors]
