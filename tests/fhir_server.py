"""A small real FHIR server for tests: serves searchsets over HTTP on a free port.

It stands in for the EHR's FHIR server, the one boundary the tests may replace.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FhirServer:
    """Answers ``GET /fhir/Observation?patient=..&code=..`` from ``observations``.

    ``page_size`` splits results into pages linked by ``next``; ``delay`` slows every answer;
    ``status`` forces an HTTP status; ``body`` replaces every answer with those bytes (a callable:
    with what it returns for the request path); ``requests`` records (path, Authorization header)
    and ``connections`` counts TCP connections accepted, whether or not a request followed.
    """

    def __init__(self) -> None:
        self.observations: list[dict[str, Any]] = []
        self.page_size = 0
        self.delay = 0.0
        self.status = 200
        self.body: bytes | Callable[[str], bytes] | None = None
        self.requests: list[tuple[str, str | None]] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Authorization")))
                time.sleep(server.delay)
                if server.body is not None:
                    data = server.body(self.path) if callable(server.body) else server.body
                    self._send_bytes(server.status, data)
                    return
                if server.status != 200:
                    self._send(
                        server.status,
                        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]},
                    )
                    return
                self._send(200, server.searchset(self.path))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                self._send_bytes(status, json.dumps(body).encode())

            def _send_bytes(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class CountingServer(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                server.connections += 1  # every accepted connection, before any byte is read
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that stops reading (a refused oversized answer) is expected

        self._httpd = CountingServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def searchset(self, path: str) -> dict[str, Any]:
        query = parse_qs(urlsplit(path).query)
        patient = query.get("patient", [""])[0]
        codes = {c.split("|")[-1] for c in ",".join(query.get("code", [])).split(",") if c}
        matching = [
            obs
            for obs in self.observations
            if obs["subject"]["reference"] == f"Patient/{patient}"
            and any(coding.get("code") in codes for coding in obs["code"]["coding"])
        ]
        offset = int(query.get("_offset", ["0"])[0])
        size = self.page_size or len(matching) or 1
        page = matching[offset : offset + size]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matching)}
        if page:
            bundle["entry"] = [{"resource": obs} for obs in page]
        if offset + size < len(matching):
            base = path.split("&_offset=")[0]
            bundle["link"] = [
                {"relation": "next", "url": f"{self.base.removesuffix('/fhir')}{base}&_offset={offset + size}"}
            ]
        return bundle

    def __enter__(self) -> FhirServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
