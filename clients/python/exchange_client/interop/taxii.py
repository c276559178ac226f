"""A read-only TAXII 2.1 server for the agency's own tools, fed by the alerts it has opened.

``exchange taxii serve`` runs it on loopback by default.  One API root (``/exchange/``) holds one
collection, :data:`COLLECTION_ID`, of the STIX 2.1 objects of every alert this agency received
(as :func:`~exchange_client.interop.stix.bundle_objects` makes them).  Implemented from the TAXII
2.1 specification (OASIS, 2021) on the standard library's threading HTTP server:

- ``GET /taxii2/`` (discovery), ``/exchange/`` (API root), ``/exchange/collections/``,
  ``/exchange/collections/{id}/``, ``…/objects/`` (``added_after``, ``limit``/``next``,
  ``match[id]``, ``match[type]``, ``match[version]``, ``match[spec_version]``),
  ``…/objects/{object_id}/``, ``…/objects/{object_id}/versions/`` and ``…/manifest/``;
- every answer is ``application/taxii+json;version=2.1``, errors in the TAXII error-message shape;
  an ``Accept`` header that admits no TAXII 2.1 media type gets 406;
- authentication on every request: ``Authorization: Bearer <token>`` or HTTP basic with the
  profile's username and the token as password (compared in constant time); 401 otherwise;
- before answering, the feed asks the hub what changed since its last look (the feed events:
  releases, revocations, retractions, new alerts) and opens those alerts again, so a revoked item
  is gone from the next answer; an item past its ``expires_at`` is left out by the clock;
  TLP:RED items are left out unless the profile says ``insecure_serve_tlp_red = true``.  When the
  hub cannot be reached the server answers 503 rather than serve what it cannot confirm.

The plaintext lives in this process's memory only, as the client library keeps it: nothing is
written to disk.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from exchange.errors import ExchangeError, NotFoundError, VerificationError
from exchange_client._internal.models import OpenedAlert
from exchange_client.interop._common import JsonObject, exportable_items
from exchange_client.interop.stix import bundle_objects

__all__ = [
    "API_ROOT",
    "COLLECTION_ID",
    "MAX_PAGE_SIZE",
    "AlertFeed",
    "FeedObject",
    "TaxiiServer",
]

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
API_ROOT = "exchange"
COLLECTION_ID = "2f1a9a4e-8f36-4c55-9d6e-3c1e5b7a0e21"
"""The one collection's id, the same on every agency's server."""
MAX_PAGE_SIZE = 1000
"""The most objects one answer holds; ``limit`` above it is lowered to it."""


@dataclass(frozen=True)
class FeedObject:
    """One STIX object in the collection, with the time it was added (its alert's publication)."""

    date_added: datetime
    stix: JsonObject

    @property
    def object_id(self) -> str:
        return str(self.stix["id"])

    @property
    def version(self) -> str:
        """``modified`` (SDOs, SROs), else ``created``, else the time it was added (SCOs)."""
        return str(self.stix.get("modified") or self.stix.get("created") or _taxii_time(self.date_added))


class FeedSource(Protocol):
    """What the server serves: the collection's objects as of now, oldest first."""

    def current_objects(self) -> Sequence[FeedObject]: ...


class AlertClient(Protocol):
    """The part of :class:`~exchange_client.Client` the feed uses."""

    def events(self, after: int | None = None, *, limit: int = 100) -> list[Any]: ...

    def open(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> OpenedAlert: ...


class FeedUnavailableError(ExchangeError):
    """The feed could not confirm with the hub what may be served."""

    reason = "FEED_UNAVAILABLE"


class AlertFeed:
    """The alerts a client has received, kept current from its feed events.

    Each :meth:`current_objects` call first reads the feed events after the last one seen and
    opens again every alert they name (a release, a revocation, a retraction, a new alert or
    version), then filters by release controls at ``clock()``.  Nothing touches the profile's own
    feed cursor, so ``exchange watch`` is unaffected.
    """

    def __init__(
        self,
        client: AlertClient,
        *,
        clock: Callable[[], datetime],
        include_tlp_red: bool = False,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._include_tlp_red = include_tlp_red
        self._on_problem = on_problem or (lambda message: None)
        self._cursor = 0
        self._alerts: dict[tuple[str, str], OpenedAlert] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the new feed events and open again the alerts they name."""
        with self._lock:
            changed: dict[tuple[str, str], None] = {}
            while True:
                try:
                    events = self._client.events(after=self._cursor, limit=100)
                except ExchangeError as e:
                    raise FeedUnavailableError(f"cannot read the feed from the hub: {e.message}") from e
                if not events:
                    break
                for event in events:
                    if event.alert_id and event.originator:
                        changed[(event.originator, event.alert_id)] = None
                    self._cursor = max(self._cursor, event.sequence)
            for key in changed:
                self._reopen(key)

    def _reopen(self, key: tuple[str, str]) -> None:
        originator, alert_id = key
        try:
            self._alerts[key] = self._client.open(alert_id, originator=originator)
        except NotFoundError:
            self._alerts.pop(key, None)
        except VerificationError as e:
            self._alerts.pop(key, None)
            self._on_problem(f"alert {originator}/{alert_id} left out: {e.message}")
        except ExchangeError as e:
            raise FeedUnavailableError(
                f"cannot open alert {originator}/{alert_id}: {e.message}"
            ) from e

    def current_objects(self) -> Sequence[FeedObject]:
        """Every object the collection holds now, oldest first; shared objects once each."""
        self.refresh()
        now = self._clock()
        with self._lock:
            alerts = list(self._alerts.values())
        found: dict[str, FeedObject] = {}
        for alert in sorted(alerts, key=_publication):
            items = exportable_items(alert, now=now, include_tlp_red=self._include_tlp_red)
            added = _publication(alert)
            for obj in bundle_objects(alert, items):
                stix: JsonObject = json.loads(obj.serialize())
                found.setdefault(stix["id"], FeedObject(date_added=added, stix=stix))
        return sorted(found.values(), key=lambda o: (o.date_added, o.object_id))


def _publication(alert: OpenedAlert) -> datetime:
    return alert.published_at or alert.created_at or datetime.fromtimestamp(0, UTC)


# --- HTTP --------------------------------------------------------------------------------------


def _taxii_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)


class _RequestError(Exception):
    def __init__(self, status: HTTPStatus, title: str, description: str) -> None:
        super().__init__(description)
        self.status, self.title, self.description = status, title, description


def _parse_time(value: str, name: str) -> datetime:
    if not _TIMESTAMP.match(value):
        raise _RequestError(
            HTTPStatus.BAD_REQUEST, "Bad request", f"{name} must be an RFC 3339 timestamp"
        )
    text = value.replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", text)
    if fraction:  # datetime takes microseconds at most
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6].ljust(6, "0"))
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as e:
        raise _RequestError(HTTPStatus.BAD_REQUEST, "Bad request", f"{name}: {e}") from e


def _encode_next(obj: FeedObject) -> str:
    text = f"{_taxii_time(obj.date_added)}|{obj.object_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_next(token: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        moment, object_id = text.split("|", 1)
        return _parse_time(moment, "next"), object_id
    except (binascii.Error, UnicodeDecodeError, ValueError, _RequestError) as e:
        raise _RequestError(
            HTTPStatus.BAD_REQUEST,
            "Bad request",
            "next is not a token this server gave out; start again without it",
        ) from e


@dataclass(frozen=True)
class _Query:
    added_after: datetime | None
    limit: int
    after: tuple[datetime, str] | None
    ids: frozenset[str]
    types: frozenset[str]
    versions: frozenset[str]

    @classmethod
    def parse(cls, query: str) -> _Query:
        try:
            values = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
        except ValueError as e:
            raise _RequestError(HTTPStatus.BAD_REQUEST, "Bad request", str(e)) from e
        known = {"added_after", "limit", "next", "match[id]", "match[type]", "match[version]",
                 "match[spec_version]"}  # fmt: skip
        unknown = sorted(set(values) - known)
        if unknown:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, "Bad request", f"unknown parameter {unknown[0]!r}"
            )

        def single(name: str) -> str | None:
            given = values.get(name)
            if given is None:
                return None
            if len(given) != 1:
                raise _RequestError(HTTPStatus.BAD_REQUEST, "Bad request", f"{name} given twice")
            return given[0]

        def listed(name: str) -> frozenset[str]:
            return frozenset(v for value in values.get(name, []) for v in value.split(",") if v)

        added_after = single("added_after")
        limit_text = single("limit")
        limit = MAX_PAGE_SIZE
        if limit_text is not None:
            if not limit_text.isdigit() or int(limit_text) < 1:
                raise _RequestError(
                    HTTPStatus.BAD_REQUEST, "Bad request", "limit must be a whole number above 0"
                )
            limit = min(int(limit_text), MAX_PAGE_SIZE)
        next_token = single("next")
        spec_versions = listed("match[spec_version]")
        if spec_versions - {"2.1"}:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, "Bad request", "this collection holds STIX 2.1 only"
            )
        return cls(
            added_after=_parse_time(added_after, "added_after") if added_after else None,
            limit=limit,
            after=_decode_next(next_token) if next_token is not None else None,
            ids=listed("match[id]"),
            types=listed("match[type]"),
            versions=listed("match[version]"),
        )

    def select(self, objects: Iterable[FeedObject]) -> list[FeedObject]:
        selected = []
        for obj in objects:
            if self.added_after is not None and obj.date_added <= self.added_after:
                continue
            if self.after is not None and (obj.date_added, obj.object_id) <= self.after:
                continue
            if self.ids and obj.object_id not in self.ids:
                continue
            if self.types and obj.stix.get("type") not in self.types:
                continue
            if self.versions - {"last", "first", "all"} and obj.version not in self.versions:
                continue
            selected.append(obj)
        return selected


class TaxiiServer:
    """The HTTP server: ``start()`` in a thread (tests) or ``serve_forever()`` (the CLI)."""

    def __init__(
        self,
        feed: FeedSource,
        *,
        host: str,
        port: int,
        username: str,
        token: str,
        title: str = "Exchange",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._feed = feed
        self._username = username
        self._token = token
        self._title = title
        self._log = log or (lambda line: None)
        self._thread: threading.Thread | None = None
        server = self

        class Handler(_Handler):
            owner = server

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when started on port 0)."""
        host, port = self._http.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The discovery URL, ``http://HOST:PORT/taxii2/``."""
        host, port = self.address
        return f"http://{host}:{port}/taxii2/"

    def start(self) -> None:
        """Serve in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._http.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join()

    # --- what the handler asks -----------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return hmac.compare_digest(credentials.encode(), self._token.encode())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except binascii.Error:
                return False
            expected = f"{self._username}:{self._token}".encode()
            return hmac.compare_digest(decoded, expected)
        return False

    def answer(self, path: str, query: str) -> tuple[HTTPStatus, JsonObject, dict[str, str]]:
        """The status, TAXII body and extra headers for one GET."""
        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        if parts == ["taxii2"]:
            return HTTPStatus.OK, self._discovery(), {}
        if not parts or parts[0] != API_ROOT:
            raise _RequestError(HTTPStatus.NOT_FOUND, "Not found", f"no TAXII resource at {path}")
        rest = parts[1:]
        if not rest:
            return HTTPStatus.OK, self._api_root(), {}
        if rest == ["collections"]:
            return HTTPStatus.OK, {"collections": [self._collection()]}, {}
        if len(rest) < 2 or rest[0] != "collections" or rest[1] != COLLECTION_ID:
            raise _RequestError(
                HTTPStatus.NOT_FOUND, "Not found", f"no collection or resource at {path}"
            )
        resource = rest[2:]
        if not resource:
            return HTTPStatus.OK, self._collection(), {}
        if resource == ["objects"]:
            return self._objects(_Query.parse(query), manifest=False)
        if resource == ["manifest"]:
            return self._objects(_Query.parse(query), manifest=True)
        if len(resource) in (2, 3) and resource[0] == "objects":
            object_query = _Query.parse(query)
            object_query = _Query(
                added_after=object_query.added_after,
                limit=object_query.limit,
                after=object_query.after,
                ids=frozenset({resource[1]}),
                types=object_query.types,
                versions=object_query.versions,
            )
            if len(resource) == 3 and resource[2] == "versions":
                return self._versions(object_query)
            if len(resource) == 2:
                status, body, headers = self._objects(object_query, manifest=False)
                if not body.get("objects"):
                    raise _RequestError(
                        HTTPStatus.NOT_FOUND, "Not found", f"no object {resource[1]} here"
                    )
                return status, body, headers
        raise _RequestError(HTTPStatus.NOT_FOUND, "Not found", f"no TAXII resource at {path}")

    def _discovery(self) -> JsonObject:
        return {
            "title": f"{self._title} TAXII 2.1",
            "description": "Alerts this agency has received from the exchange, as STIX 2.1.",
            "default": f"/{API_ROOT}/",
            "api_roots": [f"/{API_ROOT}/"],
        }

    def _api_root(self) -> JsonObject:
        return {
            "title": f"{self._title} alerts",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": 0,
        }

    def _collection(self) -> JsonObject:
        return {
            "id": COLLECTION_ID,
            "title": "Received alerts",
            "description": (
                "STIX 2.1 objects of the alerts this agency has received and may read; items "
                "revoked, expired or (unless configured) TLP:RED are absent."
            ),
            "can_read": True,
            "can_write": False,
            "media_types": [STIX_MEDIA_TYPE],
        }

    def _page(self, query: _Query) -> tuple[list[FeedObject], bool]:
        try:
            objects = self._feed.current_objects()
        except ExchangeError as e:
            raise _RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "Hub unavailable", e.message) from e
        selected = query.select(objects)
        return selected[: query.limit], len(selected) > query.limit

    def _objects(
        self, query: _Query, *, manifest: bool
    ) -> tuple[HTTPStatus, JsonObject, dict[str, str]]:
        page, more = self._page(query)
        body: JsonObject = {"more": more}
        if more:
            body["next"] = _encode_next(page[-1])
        if manifest:
            body["objects"] = [
                {
                    "id": obj.object_id,
                    "date_added": _taxii_time(obj.date_added),
                    "version": obj.version,
                    "media_type": STIX_MEDIA_TYPE,
                }
                for obj in page
            ]
        else:
            body["objects"] = [obj.stix for obj in page]
        return HTTPStatus.OK, body, _date_headers(page)

    def _versions(self, query: _Query) -> tuple[HTTPStatus, JsonObject, dict[str, str]]:
        page, more = self._page(query)
        if not page:
            raise _RequestError(HTTPStatus.NOT_FOUND, "Not found", "no such object here")
        body: JsonObject = {"more": more, "versions": [obj.version for obj in page]}
        return HTTPStatus.OK, body, _date_headers(page)


def _date_headers(page: Sequence[FeedObject]) -> dict[str, str]:
    if not page:
        return {}
    return {
        "X-TAXII-Date-Added-First": _taxii_time(page[0].date_added),
        "X-TAXII-Date-Added-Last": _taxii_time(page[-1].date_added),
    }


def _accepts_taxii(header: str | None) -> bool:
    if not header:
        return True
    for offered in header.split(","):
        media = offered.strip().lower().replace(" ", "")
        if media.startswith(("*/*", "application/*")):
            return True
        if media.startswith("application/taxii+json"):
            parameters = dict(
                part.split("=", 1) for part in media.split(";")[1:] if "=" in part
            )
            if parameters.get("version", "2.1") == "2.1":
                return True
    return False


class _Handler(BaseHTTPRequestHandler):
    owner: TaxiiServer
    server_version = "exchange-taxii/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        self.owner._log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        try:
            if not self.owner.authorized(self.headers.get("Authorization")):
                raise _RequestError(
                    HTTPStatus.UNAUTHORIZED,
                    "Authentication required",
                    "send the token from the profile's [taxii] token_file as a bearer token, "
                    "or as the password of HTTP basic authentication",
                )
            if not _accepts_taxii(self.headers.get("Accept")):
                raise _RequestError(
                    HTTPStatus.NOT_ACCEPTABLE,
                    "Not acceptable",
                    f"this server answers {TAXII_MEDIA_TYPE} only",
                )
            split = urlsplit(self.path)
            status, body, headers = self.owner.answer(split.path, split.query)
        except _RequestError as e:
            self._send_error(e)
            return
        self._send(status, body, headers)

    def _refuse_method(self) -> None:
        self._send_error(
            _RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this TAXII server is read-only: GET only",
            ),
            headers={"Allow": "GET"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def _send_error(self, error: _RequestError, headers: Mapping[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if error.status == HTTPStatus.UNAUTHORIZED:
            extra["WWW-Authenticate"] = 'Basic realm="exchange", Bearer realm="exchange"'
        body = {
            "title": error.title,
            "description": error.description,
            "http_status": str(int(error.status)),
        }
        self._send(error.status, body, extra)

    def _send(self, status: HTTPStatus, body: JsonObject, headers: Mapping[str, str]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", TAXII_MEDIA_TYPE)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def print_problem(message: str) -> None:
    """Report a left-out alert on stderr (the CLI's ``on_problem``)."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()
