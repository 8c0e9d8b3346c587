"""Compiles a parsed filter into Python closures and applies it to a candidate list.

Compilation happens once per expression (`compile_filter` is memoised); a request only binds its
$PARAMETER values, its CurrentUser and its CurrentItem into the closures, then runs one predicate per
candidate. Semantics (README.md): multi-valued item fields ("a|b" or a list) match IN / = / < ... when
any value matches; NOT IN and != are their negation over the values present; a condition on a field the
row lacks is false for every operator; event types match case-insensitively.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress
from typing import Any

from recsys.filters.errors import FilterParameterError
from recsys.filters.syntax import (
    CURRENT_ITEM,
    IN,
    INCLUDE,
    INTERACTIONS,
    ITEMS,
    NOT_IN,
    ORDERINGS,
    And,
    Condition,
    Expression,
    Field,
    Node,
    Operand,
    Param,
    ParsedFilter,
    format_filter,
    parse_filter,
)

RowPredicate = Callable[[Any], bool]
_EMPTY: Mapping[str, Any] = {}
_NO_EVENTS: frozenset[str] = frozenset()
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NUMBER_TYPES = (int, float)


def _never(_row: Any) -> bool:
    return False


# ---------------------------------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(value: Any) -> tuple[Any, ...]:
    """The values of a field: a pipe-separated string or a collection is multi-valued; missing is ()."""
    if value is None:
        return ()
    if value.__class__ is str:
        if not value:
            return ()
        return tuple(value.split("|")) if "|" in value else (value,)
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(v for v in value if v is not None and v != "")
    return (value,)


def _number(value: Any) -> float | None:
    if isinstance(value, _NUMBER_TYPES):
        return value
    if value.__class__ is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


_PARAM_VALUE_RE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^",]*))\s*', re.DOTALL)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def parse_param_values(name: str, raw: Any) -> tuple[tuple[str, bool], ...]:
    """Personalize's filterValues format: comma-separated values, strings in double quotes ("a","b"), numbers bare.

    Returns (value, was_quoted) pairs. A list/tuple is taken as the values themselves.
    """
    if isinstance(raw, (list, tuple)):
        return tuple((_text(v), isinstance(v, str)) for v in raw)
    if not isinstance(raw, str):
        return ((_text(raw), False),)
    values: list[tuple[str, bool]] = []
    position = 0
    while True:
        match = _PARAM_VALUE_RE.match(raw, position)
        assert match is not None  # the pattern matches the empty string
        quoted, bare = match.group(1), match.group(2)
        if quoted is not None:
            values.append((_UNESCAPE_RE.sub(r"\1", quoted), True))
        elif bare.strip():
            values.append((bare.strip(), False))
        else:
            raise FilterParameterError(f"parameter ${name}: expected a value at character {position + 1} of {raw!r}")
        position = match.end()
        if position == len(raw):
            return tuple(values)
        if raw[position] != ",":
            raise FilterParameterError(
                f"parameter ${name}: expected ',' between values at character {position + 1} of {raw!r}"
            )
        position += 1


class _Request:
    """The request-time inputs a filter binds: parameter values, the current user and the current item."""

    def __init__(
        self, params: Mapping[str, Any], current_user: Mapping[str, Any], current_item: Mapping[str, Any] | None
    ):
        self.params = params
        self.current_user = current_user
        self.current_item = current_item

    def raw(self, name: str) -> Any:
        raw = self.params.get(name)
        if raw is None:
            raw = self.params.get("$" + name)
        if isinstance(raw, str) and not raw.strip():
            return None
        return raw

    def values(self, name: str) -> tuple[tuple[str, bool], ...]:
        return parse_param_values(name, self.raw(name))

    def missing(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.raw(name) is None]


# ---------------------------------------------------------------------------------------------------- predicates


def _in_predicate(name: str, wanted: frozenset[str], negate: bool) -> RowPredicate:
    def predicate(row: Mapping[str, Any]) -> bool:
        value = row.get(name)
        if value.__class__ is str:
            if not value:
                return False
            hit = (not wanted.isdisjoint(value.split("|"))) if "|" in value else value in wanted
            return hit is not negate
        present = _values(value)
        if not present:
            return False
        return any(_text(v) in wanted for v in present) is not negate

    return predicate


def _event_predicate(wanted: frozenset[str], negate: bool) -> RowPredicate:
    if "*" in wanted:
        return lambda events: bool(events) is not negate
    return lambda events: (not wanted.isdisjoint(events)) is not negate


def _compare_predicate(name: str, op: str, target: float | str) -> RowPredicate:
    negate = op == "!="
    compare = _OPERATORS["=" if negate else op]
    numeric = not isinstance(target, str)
    if numeric:

        def matches(value: Any) -> bool:
            number = _number(value)
            return number is not None and compare(number, target)
    else:

        def matches(value: Any) -> bool:
            return compare(_text(value), target)

    def predicate(row: Mapping[str, Any]) -> bool:
        value = row.get(name)
        if numeric and value.__class__ in _NUMBER_TYPES:  # fast path: a plain number is one present value
            return compare(value, target) is not negate
        present = _values(value)
        if not present:
            return False
        return any(matches(v) for v in present) is not negate

    return predicate


def _scalar_target(op: str, text: str, quoted: bool, what: str) -> float | str:
    """A comparison's right-hand side: bare numeric text is a number; ordering operators need one."""
    if not quoted:
        number = _number(text)
        if number is not None:
            return number
    if op in ORDERINGS:
        raise FilterParameterError(f"{what} must be a number for '{op}', got {text!r}")
    return text


# ---------------------------------------------------------------------------------------------------- compilation

Binder = Callable[[_Request], RowPredicate]


def _constant(predicate: RowPredicate) -> Binder:
    return lambda _request: predicate


def _compile_condition(condition: Condition) -> Binder:
    name = condition.field.name
    events = condition.field.dataset == INTERACTIONS
    (first, *_rest) = condition.operands

    if condition.op in (IN, NOT_IN):
        negate = condition.op == NOT_IN

        def build(values: Iterable[str]) -> RowPredicate:
            if events:
                return _event_predicate(frozenset(v.lower() for v in values), negate)
            return _in_predicate(name, frozenset(values), negate)

        if isinstance(first, Param):
            return lambda request: build(v for v, _quoted in request.values(first.name))
        if isinstance(first, Field):
            return lambda request: build(_text(v) for v in _values((request.current_item or _EMPTY).get(first.name)))
        return _constant(build(condition.operands))  # type: ignore[arg-type]

    op = condition.op
    if isinstance(first, Param):

        def bind_param(request: _Request) -> RowPredicate:
            values = request.values(first.name)
            if len(values) != 1:
                raise FilterParameterError(f"parameter ${first.name} must be one value for '{op}', got {len(values)}")
            text, quoted = values[0]
            return _compare_predicate(name, op, _scalar_target(op, text, quoted, f"parameter ${first.name}"))

        return bind_param
    if isinstance(first, Field):

        def bind_item(request: _Request) -> RowPredicate:
            present = _values((request.current_item or _EMPTY).get(first.name))
            if len(present) != 1:
                return _never  # the current item lacks the field (or has several values): nothing compares
            value = present[0]
            if _number(value) is None and op in ORDERINGS:
                return _never
            target = _number(value) if _number(value) is not None else _text(value)
            return _compare_predicate(name, op, target)  # type: ignore[arg-type]

        return bind_item
    return _constant(_compare_predicate(name, op, first))  # type: ignore[arg-type]


def _compile_node(node: Node) -> Binder:
    if isinstance(node, Condition):
        return _compile_condition(node)
    binders = [_compile_node(part) for part in node.parts]
    if isinstance(node, And):

        def bind_and(request: _Request) -> RowPredicate:
            predicates = [binder(request) for binder in binders]

            def all_true(row: Any) -> bool:
                for predicate in predicates:
                    if not predicate(row):
                        return False
                return True

            return all_true

        return bind_and

    def bind_or(request: _Request) -> RowPredicate:
        predicates = [binder(request) for binder in binders]

        def any_true(row: Any) -> bool:
            for predicate in predicates:
                if predicate(row):
                    return True
            return False

        return any_true

    return bind_or


def _operands(node: Node) -> Iterable[Operand]:
    if isinstance(node, Condition):
        yield from node.operands
    else:
        for part in node.parts:
            yield from _operands(part)


@dataclass(frozen=True)
class _CompiledExpression:
    action: str
    dataset: str
    where: Binder
    conditions_if: tuple[Binder, ...]
    params: tuple[str, ...]
    uses_current_item: bool

    @classmethod
    def build(cls, expression: Expression) -> _CompiledExpression:
        operands = list(_operands(expression.where))
        for condition in expression.if_conditions:
            operands.extend(condition.operands)
        params = tuple(dict.fromkeys(o.name for o in operands if isinstance(o, Param)))
        uses_item = any(isinstance(o, Field) and o.dataset == CURRENT_ITEM for o in operands)
        return cls(
            expression.action,
            expression.dataset,
            _compile_node(expression.where),
            tuple(_compile_condition(c) for c in expression.if_conditions),
            params,
            uses_item,
        )

    def missing(self, request: _Request) -> list[str]:
        missing = ["$" + name for name in request.missing(self.params)]
        if self.uses_current_item and request.current_item is None:
            missing.append("CurrentItem")
        return missing

    def bind(self, request: _Request) -> RowPredicate | None:
        """The row predicate for this request, or None when the IF clause is false (the expression is off)."""
        for condition in self.conditions_if:
            if not condition(request)(request.current_user):
                return None
        return self.where(request)


def _event_set(events: str | Iterable[str]) -> frozenset[str]:
    return frozenset(e.lower() for e in ((events,) if isinstance(events, str) else events))


def _interaction_index(interactions: Mapping[str, Any] | Iterable[tuple[str, str]]) -> Mapping[str, frozenset[str]]:
    """item -> lower-cased event types, from a mapping item -> event type(s) or from (item, event type) pairs."""
    if isinstance(interactions, Mapping):
        return {item: _event_set(events) for item, events in interactions.items()}
    index: dict[str, set[str]] = {}
    for item, event_type in interactions:
        index.setdefault(item, set()).add(event_type.lower())
    return {item: frozenset(events) for item, events in index.items()}


class Filter:
    """A compiled filter. Immutable and shareable between requests and threads."""

    def __init__(self, expression: str, parsed: ParsedFilter) -> None:
        self.expression = expression
        self.parsed = parsed
        self._compiled = tuple(_CompiledExpression.build(e) for e in parsed.expressions)
        self.parameters: tuple[str, ...] = tuple(sorted({p for c in self._compiled for p in c.params}))
        self.uses_interactions = any(c.dataset == INTERACTIONS for c in self._compiled)
        self.uses_current_item = any(c.uses_current_item for c in self._compiled)

    @property
    def canonical(self) -> str:
        return format_filter(self.parsed)

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"

    def missing_parameters(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Every parameter without a value, for callers that want to reject a request rather than skip EXCLUDEs."""
        return tuple(_Request(params, _EMPTY, None).missing(self.parameters))

    def apply(
        self,
        candidates: Sequence[str],
        *,
        items: Mapping[str, Mapping[str, Any]] = _EMPTY,
        user_interactions: Mapping[str, Any] | Iterable[tuple[str, str]] = _EMPTY,
        current_user: Mapping[str, Any] = _EMPTY,
        params: Mapping[str, Any] = _EMPTY,
        current_item: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """The candidates the filter keeps, in their order.

        Chaining (Personalize): kept = (union of active INCLUDE matches, or everything if none is active)
        minus (union of active EXCLUDE matches). An expression whose IF is false is inactive. A missing
        parameter (or current item) is an error in an INCLUDE expression and switches an EXCLUDE expression off.
        """
        request = _Request(params, current_user, current_item)
        includes: list[tuple[bool, RowPredicate]] = []
        excludes: list[tuple[bool, RowPredicate]] = []
        for compiled in self._compiled:
            missing = compiled.missing(request)
            if missing:
                if compiled.action == INCLUDE:
                    raise FilterParameterError(
                        f"missing value for {', '.join(missing)}: the INCLUDE expression needs it"
                    )
                continue
            predicate = compiled.bind(request)
            if predicate is not None:
                target = includes if compiled.action == INCLUDE else excludes
                target.append((compiled.dataset == ITEMS, predicate))
        if not includes and not excludes:
            return list(candidates)
        events = _interaction_index(user_interactions) if self.uses_interactions else _EMPTY
        # One row list per dataset, then one C-level map() per expression: no Python loop per candidate.
        datasets = {on_items for on_items, _ in includes + excludes}
        item_rows = [items.get(c, _EMPTY) for c in candidates] if True in datasets else []
        event_rows = [events.get(c, _NO_EVENTS) for c in candidates] if False in datasets else []

        def matches(active: list[tuple[bool, RowPredicate]]) -> list[bool] | None:
            combined: list[bool] | None = None
            for on_items, predicate in active:
                hits = list(map(predicate, item_rows if on_items else event_rows))
                combined = hits if combined is None else list(map(operator.or_, combined, hits))
            return combined

        included, excluded = matches(includes), matches(excludes)
        if excluded is not None:
            keep = list(map(operator.not_, excluded))
            if included is not None:
                keep = list(map(operator.and_, included, keep))
        else:
            keep = included  # type: ignore[assignment]
        return list(compress(candidates, keep))


@lru_cache(maxsize=512)
def compile_filter(expression: str) -> Filter:
    """Parses (FilterSyntaxError on bad input) and compiles a filter expression; memoised per text."""
    return Filter(expression, parse_filter(expression))
