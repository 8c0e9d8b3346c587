"""The recommend API's routes over `recsys.tracker.http.JsonApi` (API Gateway REST proxy events or local HTTP).

Every route is POST with a JSON body (Personalize's GetRecommendations is a POST too):

| route | does |
| --- | --- |
| /recommendations | User-Personalization for `userId` |
| /showcase | a page of shelves for the `context.platform` layout |
| /ranking | Personalized-Ranking of `itemList` for `userId` |
| /related | Similar-Items for `itemId` |
| /popular, /trending | Popularity-Count, Trending-Now |
| /filters, /filters/list, /filters/describe, /filters/delete | named Personalize filters |

Bad input is a 4xx naming the field (400 invalid, 404 unknown filter or item, 409 filter exists, 415 not JSON).
A filter store outage on the filter routes (or for a filter never read before) is a 503 with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from recsys.filters import (
    FilterExistsError,
    FilterNotFoundError,
    FilterRegistry,
    FilterSyntaxError,
    InvalidFilterNameError,
)
from recsys.inputs import field_label
from recsys.recommend.request import ROUTE_FIELDS, parse_request
from recsys.recommend.service import Recommender
from recsys.tracker.http import JsonApi
from recsys.tracker.service import ServiceUnavailable
from recsys.tracker.validation import FieldError, RequestRejected

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 256 * 1024


def _fields(body: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestRejected(400, [FieldError("body", "must be a JSON object")])
    unknown = [FieldError(field_label(name), f"is not a known field; known: {', '.join(allowed) or 'none'}")
               for name in body if name not in allowed]
    if unknown:
        raise RequestRejected(400, unknown)
    return body


Route = Callable[[Any], tuple[int, Any]]


def _unavailable_on(store_errors: tuple[type[BaseException], ...], route: Route) -> Route:
    """A store outage on a filter route is a 503 with Retry-After (the client retries), not a 500."""

    def call(body: Any) -> tuple[int, Any]:
        try:
            return route(body)
        except store_errors as exc:
            log.warning("filters: the filter store is unavailable: %r", exc)
            raise ServiceUnavailable("filters: the filter store is unavailable; retry later") from None

    return call


def _filter_routes(registry: FilterRegistry) -> dict[tuple[str, str], Route]:
    def create(body: Any) -> tuple[int, Any]:
        data = _fields(body, ("name", "expression"))
        if not isinstance(data.get("expression"), str):
            raise RequestRejected(400, [FieldError("expression", "is required: a filter expression string")])
        try:
            record = registry.create(data.get("name"), data["expression"])
        except InvalidFilterNameError as exc:
            raise RequestRejected(400, [FieldError("name", str(exc).removeprefix("name: "))]) from None
        except FilterSyntaxError as exc:
            raise RequestRejected(400, [FieldError("expression", str(exc))]) from None
        except FilterExistsError as exc:
            raise RequestRejected(409, [FieldError("name", str(exc))]) from None
        return 201, record.to_dict()

    def named(body: Any) -> str:
        name = _fields(body, ("name",)).get("name")
        if not isinstance(name, str) or not name:
            raise RequestRejected(400, [FieldError("name", "is required: a filter name")])
        return name

    def describe(body: Any) -> tuple[int, Any]:
        try:
            return 200, registry.describe(named(body)).to_dict()
        except FilterNotFoundError as exc:
            raise RequestRejected(404, [FieldError("name", str(exc))]) from None

    def delete(body: Any) -> tuple[int, Any]:
        name = named(body)
        try:
            registry.delete(name)
        except FilterNotFoundError as exc:
            raise RequestRejected(404, [FieldError("name", str(exc))]) from None
        return 200, {"deleted": name}

    def list_all(body: Any) -> tuple[int, Any]:
        _fields(body, ())
        return 200, {"filters": [record.to_dict() for record in registry.list()]}

    return {("POST", "/filters"): create, ("POST", "/filters/describe"): describe,
            ("POST", "/filters/delete"): delete, ("POST", "/filters/list"): list_all}


class RecommendApi(JsonApi):
    def __init__(self, recommender: Recommender) -> None:
        def route(name: str) -> Route:
            return lambda body: (200, recommender.handle(parse_request(name, body, recommender.config)))

        routes = {("POST", f"/{name}"): route(name) for name in ROUTE_FIELDS}
        store_errors = recommender.backends.store_errors
        routes.update({key: _unavailable_on(store_errors, route)
                       for key, route in _filter_routes(recommender.filters).items()})
        super().__init__(routes, MAX_BODY_BYTES)
        self.recommender = recommender
