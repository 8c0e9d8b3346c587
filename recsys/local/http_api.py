"""Serve a Lambda handler over real HTTP, as an API Gateway REST API proxy integration would.

Each request becomes a REST proxy event (payload v1: httpMethod, path, headers, multiValueHeaders, query string,
body, isBase64Encoded, requestContext with requestId and stage); the handler's proxy response becomes the HTTP
response. As API Gateway does, a handler that raises or answers a malformed response gives 502, and a body over
10 MB gives 413 before the handler is called.

    with LocalHttpApi(handler, function_name="event-tracker") as api:
        urllib.request.urlopen(api.url + "/events", data=...)

Any handler works (the event tracker, the recommend API). Requests are served by concurrent threads; at most
`concurrency` invocations run at once, as in that many Lambda execution environments (1, the default, for
handlers that assume one invocation at a time, as Powertools' Lambda decorators do; more for thread-safe ones).
A request with a malformed or negative `Content-Length` is answered 400 before the handler is called. Each
answer is written in one send with Nagle's algorithm off, so a keep-alive client waits for no delayed ACK.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from recsys.config import LOCAL_ACCOUNT
from recsys.local.lambda_context import LocalLambdaContext

log = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
API_GATEWAY_MAX_PAYLOAD = 10 * 1024 * 1024


def apigateway_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    source_ip: str = "127.0.0.1",
    api_id: str = "local",
) -> dict[str, Any]:
    """The REST API proxy event for one request (`target` is the request line's path and query)."""
    url = urlsplit(target)
    path = url.path or "/"
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    query = parse_qs(url.query, keep_blank_values=True)
    now = time.time()
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    request_id = str(uuid.uuid4())
    user_agent = next((value for name, value in headers if name.lower() == "user-agent"), None)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": api_id,
            "resourcePath": path,
            "httpMethod": method,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "domainName": "localhost",
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


class LocalHttpApi:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port unless given) that calls `handler` per request."""

    def __init__(
        self,
        handler: LambdaHandler,
        *,
        function_name: str = "local-api",
        stage: str = "local",
        timeout_s: float = 30.0,
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        self.handler = handler
        self._environments = threading.BoundedSemaphore(concurrency)
        self.function_name = function_name
        self.stage = stage
        self.timeout_s = timeout_s
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHttpApi":
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name=f"http-{self.function_name}")
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "LocalHttpApi":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Call the handler with `event`; (status, headers, body) as API Gateway would answer."""
        try:
            with self._environments:
                response = self.handler(event, LocalLambdaContext(self.function_name, timeout_s=self.timeout_s))
            status = int(response["statusCode"])
            headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
            for name, values in (response.get("multiValueHeaders") or {}).items():
                headers[str(name)] = ", ".join(str(value) for value in values)
            body = response.get("body") or ""
            data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        except Exception:  # noqa: BLE001 - API Gateway answers 502 to a failed or malformed integration
            log.exception("the handler %s failed", self.function_name)
            return 502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}'
        return status, headers, data

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.wfile = _OneWrite(self.wfile)

            def _refuse(self, status: int, message: str) -> None:
                """Answer before reading the body (it is not read: the connection closes)."""
                self._answer(status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode(),
                             "")
                self.close_connection = True

            def _serve(self) -> None:
                declared = self.headers.get("Content-Length")
                if self.headers.get("Transfer-Encoding"):
                    self._refuse(411, "Content-Length is required (chunked bodies are not accepted)")
                    return
                if declared is not None and not declared.strip().isdigit():
                    self._refuse(400, "Content-Length: must be a non-negative integer")
                    return
                length = int(declared or 0)
                if length > API_GATEWAY_MAX_PAYLOAD:
                    self._refuse(413, "Request Too Long")
                    return
                body = self.rfile.read(length) if length else b""
                event = apigateway_event(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    stage=api.stage,
                    source_ip=self.client_address[0],
                )
                status, headers, data = api.invoke(event)
                self._answer(status, headers, data, event["requestContext"]["requestId"])

            def _answer(self, status: int, headers: dict[str, str], data: bytes, request_id: str) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                if request_id:
                    self.send_header("x-amzn-RequestId", request_id)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()  # buffered by _OneWrite with the body: one send
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                log.debug("%s %s", self.address_string(), format % args)

        return Handler


class _OneWrite(io.BufferedIOBase):
    """The response stream, buffered until flush, so that headers and body leave in one send."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._pending += data
        return len(data)

    def flush(self) -> None:
        if self._pending:
            self._raw.write(bytes(self._pending))
            self._pending.clear()
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # flushes what is pending
            finally:
                self._raw.close()


def post_json(url: str, payload: Any, timeout_s: float = 10.0) -> tuple[int, Any]:
    """POST `payload` as JSON; (status, decoded JSON answer). For tests, the demo and the benchmark."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
