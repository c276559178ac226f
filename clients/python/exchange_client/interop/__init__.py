"""The field's formats, on the agency's side: STIX 2.1 and MISP out and in, and a TAXII 2.1 feed.

The hub never sees plaintext, so conversion starts from what :meth:`exchange_client.Client.open`
verified and decrypted::

    from exchange_client import Client, Profile
    from exchange_client.interop import export_stix, import_stix

    with Client(Profile.load("agencies/us-dea")) as client:
        alert = client.open(alert_id)
    bundle = export_stix([alert], now=datetime.now(UTC))   # STIX 2.1 bundle as JSON data
    draft = import_stix(json.dumps(bundle).encode()).draft  # back to the draft format

Only items visible to this agency and not expired leave, each with its TLP 2.0 marking and
handling codes (:func:`exportable_items`).  ``docs/INTEROP.md`` has the field-by-field mapping.
"""

from __future__ import annotations

from exchange_client.interop._common import (
    MAX_IMPORT_FILE_BYTES,
    ImportResult,
    exportable_items,
    read_import_bytes,
    write_atomically,
)
from exchange_client.interop.misp import MAX_EVENT_ATTRIBUTES, export_misp, import_misp
from exchange_client.interop.stix import MAX_BUNDLE_OBJECTS, export_stix, import_stix
from exchange_client.interop.taxii import AlertFeed, FeedObject, TaxiiServer

__all__ = [
    "MAX_BUNDLE_OBJECTS",
    "MAX_EVENT_ATTRIBUTES",
    "MAX_IMPORT_FILE_BYTES",
    "AlertFeed",
    "FeedObject",
    "ImportResult",
    "TaxiiServer",
    "export_misp",
    "export_stix",
    "exportable_items",
    "import_misp",
    "import_stix",
    "read_import_bytes",
    "write_atomically",
]
