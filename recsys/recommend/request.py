"""Parsing and validation of the recommend API's request bodies: pure functions, no I/O.

Every problem raises `RequestRejected(400, [FieldError(field, message)])` naming the field, so a bad request
gets a 4xx that says what to fix, never a 5xx. Field names follow Amazon Personalize's GetRecommendations
(`userId`, `itemId`, `numResults`, `filterName`, `filterValues`, `context`); unknown fields are rejected, which
catches typos such as `numresults`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recsys.config import RecommendConfig
from recsys.inputs import MAX_ID_CHARS, field_label, id_problem, parse_time, text_problem, type_name
from recsys.tracker.validation import FieldError, RequestRejected

MAX_CONTEXT_CHARS = 256
MAX_FILTER_VALUES = 25  # Personalize allows 5 parameters; we allow more
MAX_FILTER_VALUE_CHARS = 1000
FORMAT_HINT = 'must be a string in Personalize\'s format, e.g. "\\"drama\\",\\"comedy\\""'
CONTEXT_FIELDS = ("platform", "geography", "time")
ROUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "recommendations": ("userId", "sessionId", "numResults", "filterName", "filterValues", "context"),
    "showcase": ("userId", "sessionId", "filterName", "filterValues", "context"),
    "ranking": ("userId", "sessionId", "itemList", "filterName", "filterValues", "context"),
    "related": ("itemId", "userId", "sessionId", "numResults", "filterName", "filterValues", "context"),
    "popular": ("userId", "sessionId", "numResults", "filterName", "filterValues", "context"),
    "trending": ("userId", "sessionId", "numResults", "filterName", "filterValues", "context"),
}
REQUIRED: dict[str, tuple[str, ...]] = {"recommendations": ("userId",), "ranking": ("userId", "itemList"),
                                        "related": ("itemId",)}


@dataclass(frozen=True)
class RequestContext:
    platform: str = "default"
    geography: str | None = None
    time: float | None = None  # unix seconds the page is for; None: now


@dataclass(frozen=True)
class ApiRequest:
    route: str
    user_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None
    item_list: tuple[str, ...] = ()
    num_results: int = 25
    filter_name: str | None = None
    filter_values: Mapping[str, str] = field(default_factory=dict)
    context: RequestContext = field(default_factory=RequestContext)
    log_exposure: bool = True  # batch jobs show nothing yet


def _identifier(value: Any, name: str, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    problem = id_problem(value, MAX_ID_CHARS)
    if problem:
        errors.append(FieldError(name, problem))
        return None
    return value


def _num_results(value: Any, config: RecommendConfig, errors: list[FieldError]) -> int:
    if value is None:
        return config.default_num_results
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError("numResults", f"must be an integer, got {type_name(value)}"))
    elif not 1 <= value <= config.max_num_results:
        errors.append(FieldError("numResults", f"must be between 1 and {config.max_num_results}, got {value}"))
    else:
        return value
    return config.default_num_results


def _filter_values(value: Any, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(FieldError("filterValues", "must be an object of parameter name to value string"))
        return {}
    if len(value) > MAX_FILTER_VALUES:
        errors.append(FieldError("filterValues", f"must have at most {MAX_FILTER_VALUES} entries, got {len(value)}"))
        return {}
    values: dict[str, str] = {}
    for name, text in value.items():
        where = f"filterValues.{field_label(name)}"
        problem = id_problem(name, MAX_ID_CHARS)
        if problem:
            errors.append(FieldError(where, f"name {problem}"))
        elif not isinstance(text, str):
            errors.append(FieldError(where, FORMAT_HINT))
        elif problem := text_problem(text, MAX_FILTER_VALUE_CHARS, free_text=True):
            errors.append(FieldError(where, problem))
        else:
            values[name.removeprefix("$")] = text
    return values


def _time(value: Any, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    seconds, problem = parse_time(value)
    if problem:
        errors.append(FieldError("context.time", problem))
    return seconds


def _context(value: Any, errors: list[FieldError]) -> RequestContext:
    if value is None:
        return RequestContext()
    if not isinstance(value, Mapping):
        errors.append(FieldError("context", "must be an object with platform, geography and/or time"))
        return RequestContext()
    for name in value:
        if name not in CONTEXT_FIELDS:
            errors.append(FieldError(f"context.{field_label(name)}",
                                     f"is not a known field; known: {', '.join(CONTEXT_FIELDS)}"))
    texts: dict[str, str | None] = {}
    for name in ("platform", "geography"):
        text = value.get(name)
        if text is not None and (problem := id_problem(text, MAX_CONTEXT_CHARS)):
            errors.append(FieldError(f"context.{name}", problem))
            text = None
        texts[name] = text
    return RequestContext(platform=texts["platform"] or "default", geography=texts["geography"],
                          time=_time(value.get("time"), errors))


def _item_list(value: Any, config: RecommendConfig, errors: list[FieldError]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        errors.append(FieldError("itemList", "must be a non-empty array of item id strings"))
        return ()
    if len(value) > config.max_rank_items:
        errors.append(FieldError("itemList", f"must have at most {config.max_rank_items} items, got {len(value)}"))
        return ()
    items = []
    for index, item in enumerate(value):
        checked = _identifier(item, f"itemList[{index}]", errors)
        if checked is not None:
            items.append(checked)
    return tuple(dict.fromkeys(items))


def parse_request(route: str, body: Any, config: RecommendConfig) -> ApiRequest:
    """The typed request of `route` from its decoded JSON body; RequestRejected(400) names every bad field."""
    if not isinstance(body, Mapping):
        raise RequestRejected(400, [FieldError("body", "must be a JSON object")])
    allowed = ROUTE_FIELDS[route]
    errors = [FieldError(field_label(name), f"is not a known field of /{route}; known: {', '.join(allowed)}")
              for name in body if name not in allowed]
    errors += [FieldError(name, "is required") for name in REQUIRED.get(route, ()) if body.get(name) is None]
    request = ApiRequest(
        route=route,
        user_id=_identifier(body.get("userId"), "userId", errors),
        session_id=_identifier(body.get("sessionId"), "sessionId", errors),
        item_id=_identifier(body.get("itemId"), "itemId", errors),
        item_list=_item_list(body.get("itemList"), config, errors),
        num_results=_num_results(body.get("numResults"), config, errors),
        filter_name=_identifier(body.get("filterName"), "filterName", errors),
        filter_values=_filter_values(body.get("filterValues"), errors),
        context=_context(body.get("context"), errors),
    )
    if body.get("filterValues") and body.get("filterName") is None:
        errors.append(FieldError("filterValues", "needs filterName"))
    if errors:
        raise RequestRejected(400, errors)
    return request
