"""Batch recommendations (Personalize's batch inference job): JSON lines of users in, JSON lines of
recommendations out, through the same request flow as the API (`Recommender.handle`).

Input (S3 URI, prefix or local path; `.gz` allowed): one `/recommendations` request body per line, e.g.
`{"userId": "u1"}` or `{"userId": "u1", "numResults": 50, "filterName": "no-horror", "context": {...}}`.
`numResults` and `filterName`/`filterValues` given to the job apply to lines that do not set their own.

Output (one object): per input line, in order,
`{"input": {...}, "output": {"itemList": [...], "recommendationId", "variant", "degraded", ...}, "error": null}`,
or `"output": null, "error": {"status": 400, "message": "userId: is required"}` for a bad line. A bad line never
stops the job; it is reported in its output line and counted. Exposures are not logged: nothing was shown yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from recsys.inputs import json_depth_problem
from recsys.monitoring import storage
from recsys.recommend.request import parse_request
from recsys.recommend.service import Recommender
from recsys.tracker.service import ServiceUnavailable
from recsys.tracker.validation import RequestRejected

ROUTE = "recommendations"


@dataclass
class BatchReport:
    users: int = 0
    written: int = 0
    degraded: int = 0
    errors: int = 0
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"users": self.users, "written": self.written, "degraded": self.degraded, "errors": self.errors,
                "output": self.output}


def _line_result(recommender: Recommender, text: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return {"input": text, "output": None, "error": {"status": 400, "message": "line: is not valid JSON"}}
    problem = json_depth_problem(body)
    if problem:
        return {"input": text, "output": None, "error": {"status": 400, "message": f"line: {problem}"}}
    merged = {**defaults, **body} if isinstance(body, dict) else body
    try:
        request = replace(parse_request(ROUTE, merged, recommender.config), log_exposure=False)
        return {"input": body, "output": recommender.handle(request), "error": None}
    except RequestRejected as exc:
        return {"input": body, "output": None, "error": {"status": exc.status, "message": str(exc)}}
    except ServiceUnavailable as exc:  # a store outage fails this line, never the job
        return {"input": body, "output": None, "error": {"status": 503, "message": str(exc)}}


def recommend_lines(recommender: Recommender, lines: Iterable[str], defaults: Mapping[str, Any] | None = None,
                    report: BatchReport | None = None) -> Iterable[str]:
    """One output JSON line per input line."""
    report = report if report is not None else BatchReport()
    for text in lines:
        result = _line_result(recommender, text, defaults or {})
        report.users += 1
        report.errors += result["error"] is not None
        report.degraded += bool(result["output"] and result["output"]["degraded"])
        report.written += 1
        yield json.dumps(result, separators=(",", ":"))


def run_batch(recommender: Recommender, input_uri: str, output_uri: str, *, num_results: int | None = None,
              filter_name: str | None = None, filter_values: Mapping[str, str] | None = None) -> BatchReport:
    defaults: dict[str, Any] = {}
    if num_results is not None:
        defaults["numResults"] = num_results
    if filter_name is not None:
        defaults["filterName"] = filter_name
        defaults["filterValues"] = dict(filter_values or {})
    report = BatchReport(output=output_uri)
    lines = (line.text for line in storage.iter_lines(input_uri))
    body = "\n".join(recommend_lines(recommender, lines, defaults, report))
    storage.write_bytes(output_uri, (body + "\n").encode() if body else b"", "application/x-ndjson")
    return report


def run_batch_job(recommender: Recommender, event: Mapping[str, Any]) -> dict[str, Any]:
    """The Step Functions task: {"input", "output", "numResults"?, "filterName"?, "filterValues"?}."""
    for name in ("input", "output"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise ValueError(f"{name}: required S3 URI or path")
    report = run_batch(recommender, event["input"], event["output"], num_results=event.get("numResults"),
                       filter_name=event.get("filterName"), filter_values=event.get("filterValues"))
    return report.to_dict()
