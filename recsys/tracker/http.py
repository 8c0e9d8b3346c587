"""HTTP plumbing for Lambdas behind an API Gateway REST proxy integration (payload v1).

`request_from_apigateway` turns the proxy event into an `HttpRequest`; `HttpResponse.to_apigateway` turns the
answer back. `JsonApi` routes requests to functions that take the decoded JSON body, and maps the tracker's
exceptions to 4xx/503 with a JSON error that names the field. Nothing here is specific to events, so the
recommend API can reuse it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recsys.inputs import MAX_JSON_DEPTH, json_depth_problem
from recsys.tracker.service import ServiceUnavailable
from recsys.tracker.validation import FieldError, RequestRejected

JSON_CONTENT_TYPE = "application/json"
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_id: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class HttpResponse:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)

    def to_apigateway(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {"Content-Type": JSON_CONTENT_TYPE, **self.headers},
            "body": json.dumps(self.payload, separators=(",", ":")),
            "isBase64Encoded": False,
        }


def error_response(status: int, errors: tuple[FieldError, ...] | list[FieldError], **headers: str) -> HttpResponse:
    message = "; ".join(str(error) for error in errors)
    return HttpResponse(status, {"message": message, "errors": [error.to_dict() for error in errors]}, headers)


def request_from_apigateway(event: Mapping[str, Any]) -> HttpRequest:
    """The request of a REST API proxy event. A base64 body that does not decode is a 400 (RequestRejected)."""
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestRejected(400, [FieldError("body", "is flagged base64 but does not decode")]) from None
    else:
        raw = body.encode()
    path = str(event.get("path") or "/").rstrip("/") or "/"
    request_id = (event.get("requestContext") or {}).get("requestId")
    return HttpRequest(str(event.get("httpMethod") or "").upper(), path, headers, raw, request_id)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_CONTENT_TYPE or (media_type.startswith("application/") and media_type.endswith("+json"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json_body(request: HttpRequest, max_body_bytes: int) -> Any:
    """The JSON body, or RequestRejected: 415 not JSON content, 413 too large, 400 malformed."""
    if not _is_json(request.header("content-type")):
        given = request.header("content-type") or "none"
        raise RequestRejected(415, [FieldError("Content-Type", f"must be {JSON_CONTENT_TYPE}, got {given}")])
    if len(request.body) > max_body_bytes:
        message = f"{len(request.body)} bytes exceed the limit of {max_body_bytes}"
        raise RequestRejected(413, [FieldError("body", message)])
    try:
        document = json.loads(request.body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RequestRejected(400, [FieldError("body", f"is not UTF-8 (byte {exc.start})")]) from None
    except RecursionError:
        raise RequestRejected(400, [FieldError("body", f"nests more than {MAX_JSON_DEPTH} levels")]) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RequestRejected(400, [FieldError("body", f"is not valid JSON at {where}: {exc.msg}")]) from None
    except ValueError as exc:  # NaN / Infinity, refused by _reject_constant
        raise RequestRejected(400, [FieldError("body", str(exc))]) from None
    problem = json_depth_problem(document)
    if problem:
        raise RequestRejected(400, [FieldError("body", problem)])
    return document


Route = Callable[[Any], tuple[int, Any]]


class JsonApi:
    """Routes (method, path) to a function of the decoded JSON body that returns (status, payload)."""

    def __init__(self, routes: Mapping[tuple[str, str], Route], max_body_bytes: int) -> None:
        self.routes = dict(routes)
        self.max_body_bytes = max_body_bytes

    def handle(self, request: HttpRequest) -> HttpResponse:
        route = self.routes.get((request.method, request.path))
        if route is None:
            return self._no_route(request)
        try:
            status, payload = route(decode_json_body(request, self.max_body_bytes))
        except RequestRejected as exc:
            return error_response(exc.status, exc.errors)
        except ServiceUnavailable as exc:
            return HttpResponse(503, {"message": str(exc)}, {"Retry-After": str(RETRY_AFTER_S)})
        return HttpResponse(status, payload, {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {})

    def handle_apigateway(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            request = request_from_apigateway(event)
        except RequestRejected as exc:
            return error_response(exc.status, exc.errors).to_apigateway()
        return self.handle(request).to_apigateway()

    def _no_route(self, request: HttpRequest) -> HttpResponse:
        methods = sorted(method for method, path in self.routes if path == request.path)
        if methods:
            error = FieldError("method", f"{request.method} is not allowed on {request.path}; use {', '.join(methods)}")
            return error_response(405, [error], Allow=", ".join(methods))
        known = ", ".join(f"{method} {path}" for method, path in sorted(self.routes))
        return error_response(404, [FieldError("path", f"no route {request.method} {request.path}; routes: {known}")])
