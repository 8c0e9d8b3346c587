"""Every metric of the platform's own namespace that a dashboard or an alarm reads is one the code really emits.

Emitted: the literal names of Powertools `add_metric(name="...")` calls anywhere under recsys/ and lambdas/ (found by
parsing the code, not importing it), the monitoring jobs' `recsys.monitoring.metrics.CATALOGUE`, and what state
machines publish with `aws-sdk:cloudwatch:putMetricData` tasks (the daily pipeline's failure path). Read: the
metrics in the namespace `StageConfig.names.metrics_namespace` of every synthesized dashboard body (metric arrays
and SEARCH / Metrics Insights expressions) and every `AWS::CloudWatch::Alarm`, in every stack.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdk_synth import STACKS, Synth

import recsys
from recsys.monitoring.metrics import CATALOGUE

REPO = Path(recsys.__file__).resolve().parents[1]
# The names the recommend API and the daily pipeline agreed to emit (docs/monitoring.md); the dashboard shows each.
AGREED = (
    "RecommendRequests", "RecommendLatency", "RecommendDegraded", "EndpointFallbacks", "CircuitOpen",
    "BoostsAutoDisabled", "BoostCapExceeded", "ExposuresLogged", "PipelineFailures",
)
_SEARCH_NAME = re.compile(r'MetricName\s*=\s*"([^"]+)"')
_SEARCH_NAMESPACE = re.compile(r'Namespace\s*=\s*"([^"]+)"')
_INSIGHTS = re.compile(r'SELECT\s+\w+\((\w+)\)\s+FROM\s+(?:SCHEMA\()?"([^"]+)"', re.I)


def _loop_literals(tree: ast.AST) -> dict[str, set[str]]:
    """Loop variables bound to literal strings: `for status, name in (("accepted", "EventsAccepted"), ...)`."""
    bound: dict[str, set[str]] = {}
    for loop in ast.walk(tree):
        if not (isinstance(loop, ast.For) and isinstance(loop.iter, (ast.Tuple, ast.List))):
            continue
        targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
        for item in loop.iter.elts:
            values = item.elts if isinstance(item, ast.Tuple) and isinstance(loop.target, ast.Tuple) else [item]
            for target, value in zip(targets, values):
                if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    bound.setdefault(target.id, set()).add(value.value)
    return bound


def literal_metric_names(source: str, filename: str = "<source>") -> tuple[set[str], list[str]]:
    """Names of `<anything>.add_metric(name=..., ...)` calls, literal or taken from a loop over literals, and where a
    name is neither."""
    tree = ast.parse(source, filename)
    loops = _loop_literals(tree)
    names, dynamic = set(), []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_metric"):
            continue
        name = next((kw.value for kw in node.keywords if kw.arg == "name"), node.args[0] if node.args else None)
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            names.add(name.value)
        elif isinstance(name, ast.Name) and name.id in loops:
            names |= loops[name.id]
        else:
            dynamic.append(f"{filename}:{node.lineno}")
    return names, dynamic


def emitted_names() -> set[str]:
    names = set(CATALOGUE)
    for folder in ("recsys", "lambdas"):
        for path in sorted((REPO / folder).rglob("*.py")):
            names |= literal_metric_names(path.read_text(), str(path.relative_to(REPO)))[0]
    return names


def _put_metric_data_tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "cloudwatch:putMetricData" in str(node.get("Resource", "")):
            yield node.get("Parameters", {})
        for value in node.values():
            yield from _put_metric_data_tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _put_metric_data_tasks(value)


def state_machine_names(synth: Synth) -> set[str]:
    """Metrics that state machines publish themselves (`aws-sdk:cloudwatch:putMetricData` tasks, literal names)."""
    namespace = synth.config.names.metrics_namespace
    names = set()
    for kind in STACKS:
        for machine in synth.resources(kind, "AWS::StepFunctions::StateMachine").values():
            definition = machine["Properties"]["DefinitionString"]
            if isinstance(definition, dict):
                definition = "".join(part if isinstance(part, str) else "TOKEN" for part in definition["Fn::Join"][1])
            for parameters in _put_metric_data_tasks(json.loads(definition)):
                if parameters.get("Namespace") == namespace:
                    names |= {datum["MetricName"] for datum in parameters.get("MetricData", [])}
    return names


def _dashboard_metrics(body: dict[str, Any], namespace: str) -> Iterator[str]:
    for widget in body.get("widgets", []):
        for entry in widget.get("properties", {}).get("metrics", []):
            if isinstance(entry[0], str):
                if entry[0] == namespace:
                    yield entry[1]
            else:
                yield from _expression_metrics(entry[0].get("expression", ""), namespace)


def _expression_metrics(expression: str, namespace: str) -> Iterator[str]:
    if "SEARCH(" in expression and namespace in _SEARCH_NAMESPACE.findall(expression):
        yield from _SEARCH_NAME.findall(expression)
    for name, schema_namespace in _INSIGHTS.findall(expression):
        if schema_namespace == namespace:
            yield name


def _alarm_metrics(alarm: dict[str, Any], namespace: str) -> Iterator[str]:
    if alarm.get("Namespace") == namespace:
        yield alarm["MetricName"]
    for query in alarm.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric", {})
        if metric.get("Namespace") == namespace:
            yield metric["MetricName"]
        yield from _expression_metrics(query.get("Expression", ""), namespace)


def dashboard_names(synth: Synth) -> set[str]:
    namespace = synth.config.names.metrics_namespace
    return {name for body in synth.dashboards().values() for name in _dashboard_metrics(body, namespace)}


def alarm_names(synth: Synth) -> set[str]:
    namespace = synth.config.names.metrics_namespace
    return {
        name
        for kind in STACKS
        for alarm in synth.resources(kind, "AWS::CloudWatch::Alarm").values()
        for name in _alarm_metrics(alarm["Properties"], namespace)
    }


@pytest.fixture(scope="module")
def emitted() -> set[str]:
    return emitted_names()


def test_every_dashboard_metric_of_our_namespace_is_emitted(synth: Synth, emitted: set[str]) -> None:
    shown = dashboard_names(synth)
    assert len(shown) >= 30, "the dashboard parser found too few of the platform's metrics: it is broken"
    assert sorted(shown - emitted - state_machine_names(synth)) == []


def test_every_alarm_metric_of_our_namespace_is_emitted(synth: Synth, emitted: set[str]) -> None:
    alarmed = alarm_names(synth)
    assert len(alarmed) >= 10, "the alarm parser found too few of the platform's metrics: it is broken"
    assert sorted(alarmed - emitted - state_machine_names(synth)) == []


def test_the_agreed_recommend_and_pipeline_metrics_are_on_the_dashboard(dev: Synth) -> None:
    assert sorted(set(AGREED) - dashboard_names(dev)) == []


def test_the_scan_finds_the_tracker_writer_and_catalogue_metrics(emitted: set[str]) -> None:
    assert {"EventsAccepted", "EventsRejected", "ReflectionTime", "EventsDuplicate", "LakeRecordsFailed"} <= emitted
    assert {"DriftedFeatures", "ABCtr", "ShowcaseUnchangedShare"} <= emitted


def test_the_scan_reads_literal_and_loop_bound_names_and_reports_the_others() -> None:
    source = (
        'metrics.add_metric(name="Literal", unit="Count", value=1)\n'
        'm.add_metric("Positional", "Count", 1)\n'
        'metrics.add_metric(name=f"{kind}Upserted", unit="Count", value=1)\n'
        'other.put_metric(name="NotAPowertoolsCall")\n'
        'for status, metric in (("ok", "Looped"), ("bad", "LoopedToo")):\n'
        '    metrics.add_metric(name=metric, unit="Count", value=1)\n'
        'metrics.add_metric(name=unknown, unit="Count", value=1)\n'
    )
    names, dynamic = literal_metric_names(source, "example.py")
    assert names == {"Literal", "Positional", "Looped", "LoopedToo"}
    assert dynamic == ["example.py:3", "example.py:7"]


def test_the_readers_find_metric_arrays_search_and_insights_expressions_and_alarm_queries() -> None:
    namespace = "recsys-dev"
    body = {"widgets": [
        {"properties": {"metrics": [
            ["recsys-dev", "Shown", "service", "x", {"stat": "Sum"}],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage"],
            [{"expression": "SEARCH('Namespace=\"recsys-dev\" MetricName=\"Searched\"', 'Sum', 300)"}],
            [{"expression": "SEARCH('Namespace=\"other\" MetricName=\"Elsewhere\"', 'Sum', 300)"}],
            [{"expression": "SELECT MAX(Queried) FROM SCHEMA(\"recsys-dev\", service)"}],
        ]}},
        {"type": "text", "properties": {"markdown": "# header"}},
    ]}
    assert sorted(_dashboard_metrics(body, namespace)) == ["Queried", "Searched", "Shown"]
    alarm = {"Metrics": [
        {"Id": "e", "Expression": "d / r"},
        {"Id": "d", "MetricStat": {"Metric": {"Namespace": "recsys-dev", "MetricName": "Degraded"}}},
        {"Id": "r", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations"}}},
    ]}
    assert list(_alarm_metrics(alarm, namespace)) == ["Degraded"]
    assert list(_alarm_metrics({"Namespace": "recsys-dev", "MetricName": "Single"}, namespace)) == ["Single"]
    put = "arn:TOKEN:states:::aws-sdk:cloudwatch:putMetricData"
    definition = {"States": {"Count": {"Type": "Task", "Resource": put,
                                       "Parameters": {"Namespace": namespace, "MetricData": [{"MetricName": "Sent"}]}},
                             "Other": {"Type": "Parallel", "Branches": [{"States": {"Deep": {
                                 "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
                                 "Parameters": {"Namespace": namespace, "MetricData": [{"MetricName": "Nested"}]}}}}]}}}
    assert [d["MetricName"] for p in _put_metric_data_tasks(definition) for d in p["MetricData"]] == ["Sent", "Nested"]
