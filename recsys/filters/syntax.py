"""Lexer, parser and printer of Amazon Personalize filter expressions (grammar in README.md).

`parse_filter(text)` returns a `ParsedFilter` (a tuple of `Expression`s joined by `|`), or raises
`FilterSyntaxError` with the 1-based column and what was expected there. `format_filter` prints the
canonical text back; parsing it again gives an equal tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn

from recsys.filters.errors import FilterSyntaxError
from recsys.inputs import bad_char, describe_char

MAX_EXPRESSION_CHARS = 2500  # Personalize's CreateFilter limit
# Parentheses nest at most this deep: the parser, printer and compiler recurse once per level.
MAX_NESTING = 32

ITEMS = "Items"
INTERACTIONS = "Interactions"
CURRENT_USER = "CurrentUser"
CURRENT_ITEM = "CurrentItem"
_DATASETS = {name.upper(): name for name in (ITEMS, INTERACTIONS, CURRENT_USER, CURRENT_ITEM)}
EVENT_TYPE = "EVENT_TYPE"

INCLUDE = "INCLUDE"
EXCLUDE = "EXCLUDE"
IN = "IN"
NOT_IN = "NOT IN"
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ORDERINGS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class Field:
    dataset: str
    name: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.name}"


@dataclass(frozen=True)
class Param:
    name: str  # without the leading '$'


# A value in a condition: a string or number literal, a request-time $PARAMETER, or a CurrentItem field.
Operand = str | float | Param | Field


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str  # IN, NOT IN or one of COMPARISONS
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Condition | And | Or


@dataclass(frozen=True)
class Expression:
    action: str  # INCLUDE or EXCLUDE
    dataset: str  # ITEMS or INTERACTIONS: every WHERE condition uses it
    where: Node
    if_conditions: tuple[Condition, ...] = ()  # joined with AND; all on CurrentUser
    column: int = field(default=1, compare=False)


@dataclass(frozen=True)
class ParsedFilter:
    expressions: tuple[Expression, ...]


# ---------------------------------------------------------------------------------------------------- lexer


@dataclass(frozen=True)
class _Token:
    kind: str  # word, number, string, param, op, ( ) , . | end
    text: str
    column: int
    value: object = None


_TOKEN_RE = re.compile(
    r"""(?P<space>\s+)
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<param>\$[A-Za-z0-9_]+)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<op><=|>=|!=|=|<|>)
    |(?P<punct>[().,|])""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _tokenize(text: str) -> Iterator[_Token]:
    """Yields tokens lazily, so the first error in reading order is the one reported."""
    position, end = 0, len(text)
    while position < end:
        match = _TOKEN_RE.match(text, position)
        column = position + 1
        if match is None:
            char = text[position]
            if char == '"':
                raise FilterSyntaxError(column, "expected a closing '\"' for this string, found end of expression")
            if char == "'":
                raise FilterSyntaxError(column, 'expected a double-quoted string, found "\'"')
            if char == "$":
                raise FilterSyntaxError(
                    column,
                    f"expected a parameter name after '$', found {_describe_text(text[position + 1 : position + 2])}",
                )
            raise FilterSyntaxError(column, f"expected a keyword, field, value or operator, found {char!r}")
        kind = match.lastgroup
        chunk = match.group()
        position = match.end()
        if kind == "space":
            continue
        if kind == "punct":
            yield _Token(chunk, chunk, column)
        elif kind == "number":
            yield _Token(kind, chunk, column, float(chunk))
        elif kind == "string":
            yield _Token(kind, chunk, column, _UNESCAPE_RE.sub(r"\1", chunk[1:-1]))
        elif kind == "param":
            yield _Token(kind, chunk, column, chunk[1:])
        else:
            yield _Token(kind, chunk, column)
    yield _Token("end", "", end + 1)


def _describe_text(text: str) -> str:
    return "end of expression" if not text else repr(text)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


# ---------------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.pending = _tokenize(text)
        self.tokens: list[_Token] = []
        self.index = 0
        self.scope: str | None = None  # dataset of the first WHERE condition of the current expression
        self.depth = 0  # parentheses open at the current token

    def peek(self) -> _Token:
        while len(self.tokens) <= self.index:
            self.tokens.append(next(self.pending))
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    @staticmethod
    def fail(expected: str, token: _Token) -> NoReturn:
        raise FilterSyntaxError(token.column, f"expected {expected}, found {_describe(token)}")

    @staticmethod
    def is_word(token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.text.upper() in words

    def parse(self) -> ParsedFilter:
        expressions = [self.expression()]
        while self.peek().kind == "|":
            self.take()
            expressions.append(self.expression())
        return ParsedFilter(tuple(expressions))

    def expression(self) -> Expression:
        self.scope = None
        start = self.take()
        if not self.is_word(start, INCLUDE, EXCLUDE):
            self.fail("INCLUDE or EXCLUDE", start)
        target = self.take()
        if not self.is_word(target, "ITEMID"):
            self.fail("ItemID", target)
        where = self.take()
        if not self.is_word(where, "WHERE"):
            self.fail("WHERE", where)
        condition = self.or_node()
        if_conditions: tuple[Condition, ...] = ()
        if self.is_word(self.peek(), "IF"):
            self.take()
            if_conditions = self.if_conditions()
            after = "AND, '|' or end of expression"
            if self.is_word(self.peek(), "OR"):
                after += " (IF conditions can only be joined with AND)"
        else:
            after = "AND, OR, IF, '|' or end of expression"
        if self.peek().kind not in ("|", "end"):
            self.fail(after, self.peek())
        assert self.scope is not None
        return Expression(start.text.upper(), self.scope, condition, if_conditions, start.column)

    def or_node(self) -> Node:
        parts = [self.and_node()]
        while self.is_word(self.peek(), "OR"):
            self.take()
            parts.append(self.and_node())
        return _join(Or, parts)

    def and_node(self) -> Node:
        parts = [self.primary()]
        while self.is_word(self.peek(), "AND"):
            self.take()
            parts.append(self.primary())
        return _join(And, parts)

    def primary(self) -> Node:
        if self.peek().kind == "(":
            opening = self.take()
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise FilterSyntaxError(opening.column, f"expected at most {MAX_NESTING} levels of parentheses")
            node = self.or_node()
            self.depth -= 1
            if self.peek().kind != ")":
                self.fail("')', AND or OR", self.peek())
            self.take()
            return node
        return self.condition(in_if=False)

    def if_conditions(self) -> tuple[Condition, ...]:
        conditions = [self.condition(in_if=True)]
        while self.is_word(self.peek(), "AND"):
            self.take()
            conditions.append(self.condition(in_if=True))
        return tuple(conditions)

    def condition(self, in_if: bool) -> Condition:
        subject = self.subject(in_if)
        token = self.peek()
        if self.is_word(token, "NOT"):
            self.take()
            if not self.is_word(self.peek(), "IN"):
                self.fail("IN after NOT", self.peek())
            self.take()
            op = NOT_IN
        elif self.is_word(token, "IN"):
            self.take()
            op = IN
        elif token.kind == "op":
            self.take()
            op = token.text
        else:
            self.fail("IN, NOT IN or a comparison operator", token)
        if subject.dataset == INTERACTIONS and op not in (IN, NOT_IN):
            raise FilterSyntaxError(token.column, f"expected IN or NOT IN after Interactions.EVENT_TYPE, found '{op}'")
        operands = self.list_operands(op) if op in (IN, NOT_IN) else (self.scalar_operand(op),)
        return Condition(subject, op, operands)

    def subject(self, in_if: bool) -> Field:
        token = self.peek()
        expected = "CurrentUser.<FIELD>" if in_if else "a field such as Items.<FIELD> or Interactions.EVENT_TYPE"
        if token.kind != "word" or token.text.upper() not in _DATASETS:
            self.fail(expected, token)
        subject = self.field()
        where = f"found '{subject}'"
        if in_if:
            if subject.dataset != CURRENT_USER:
                raise FilterSyntaxError(token.column, f"expected CurrentUser.<FIELD> in an IF condition, {where}")
            return subject
        if subject.dataset == CURRENT_USER:
            raise FilterSyntaxError(
                token.column, f"expected an Items or Interactions field (CurrentUser goes after IF), {where}"
            )
        if subject.dataset == CURRENT_ITEM:
            raise FilterSyntaxError(
                token.column, f"expected an Items or Interactions field (CurrentItem is only a value), {where}"
            )
        if self.scope is None:
            self.scope = subject.dataset
        elif subject.dataset != self.scope:
            raise FilterSyntaxError(
                token.column,
                f"expected an {self.scope} field like the first condition (chain other datasets with '|'), {where}",
            )
        if subject.dataset == INTERACTIONS:
            if subject.name.upper() != EVENT_TYPE:
                raise FilterSyntaxError(
                    token.column, f"expected Interactions.EVENT_TYPE (the only filterable interaction field), {where}"
                )
            subject = Field(INTERACTIONS, EVENT_TYPE)
        return subject

    def field(self) -> Field:
        dataset = self.take()
        dot = self.take()
        if dot.kind != ".":
            self.fail(f"'.' after {dataset.text}", dot)
        name = self.take()
        canonical = _DATASETS[dataset.text.upper()]
        if name.kind != "word":
            self.fail(f"a field name after '{canonical}.'", name)
        return Field(canonical, name.text)

    def list_operands(self, op: str) -> tuple[Operand, ...]:
        if self.is_word(self.peek(), CURRENT_ITEM.upper()):
            return (self.current_item(),)
        if self.peek().kind != "(":
            self.fail(f"'(' or CurrentItem.<FIELD> after {op}", self.peek())
        self.take()
        token = self.peek()
        if token.kind == "param":
            if op == NOT_IN:
                raise FilterSyntaxError(
                    token.column,
                    "expected quoted strings after NOT IN (a $PARAMETER needs IN with the opposite action), "
                    f"found {_describe(token)}",
                )
            self.take()
            self.expect_close("')' after a $PARAMETER (one parameter per list)")
            return (Param(token.value),)  # type: ignore[arg-type]
        if self.is_word(token, CURRENT_ITEM.upper()):
            operand = self.current_item()
            self.expect_close("')'")
            return (operand,)
        values: list[str] = []
        expected = "a quoted string, a $PARAMETER or CurrentItem.<FIELD>" if op == IN else "a quoted string"
        while True:
            token = self.take()
            if token.kind != "string":
                self.fail(expected, token)
            values.append(token.value)  # type: ignore[arg-type]
            separator = self.take()
            if separator.kind == ")":
                return tuple(values)
            if separator.kind != ",":
                self.fail("',' or ')'", separator)
            expected = "a quoted string"

    def expect_close(self, expected: str) -> None:
        if self.peek().kind != ")":
            self.fail(expected, self.peek())
        self.take()

    def scalar_operand(self, op: str) -> Operand:
        token = self.peek()
        if token.kind == "param":
            self.take()
            return Param(token.value)  # type: ignore[arg-type]
        if token.kind == "(":
            self.take()
            inner = self.take()
            if inner.kind != "param":
                self.fail(f"a $PARAMETER inside '(' after '{op}'", inner)
            self.expect_close("')' after a $PARAMETER")
            return Param(inner.value)  # type: ignore[arg-type]
        if token.kind == "number":
            self.take()
            return token.value  # type: ignore[return-value]
        if token.kind == "string" and op in ("=", "!="):
            self.take()
            return token.value  # type: ignore[return-value]
        if self.is_word(token, CURRENT_ITEM.upper()):
            return self.current_item()
        strings = ", a quoted string" if op in ("=", "!=") else ""
        self.fail(f"a number{strings}, a $PARAMETER or CurrentItem.<FIELD> after '{op}'", token)

    def current_item(self) -> Field:
        return self.field()


def _join(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    if len(parts) == 1:
        return parts[0]
    flat: list[Node] = []
    for part in parts:  # (a AND b) AND c is a AND b AND c: one canonical tree
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


def parse_filter(text: str) -> ParsedFilter:
    if not isinstance(text, str):
        raise TypeError(f"a filter expression must be a str, not {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise FilterSyntaxError(
            MAX_EXPRESSION_CHARS + 1, f"expected at most {MAX_EXPRESSION_CHARS} characters, found {len(text)}"
        )
    index = bad_char(text, free_text=True)
    if index is not None:
        raise FilterSyntaxError(index + 1, f"expected text, found {describe_char(text[index])}")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------------- printer


def format_filter(parsed: ParsedFilter) -> str:
    return " | ".join(format_expression(expression) for expression in parsed.expressions)


def format_expression(expression: Expression) -> str:
    text = f"{expression.action} ItemID WHERE {_format_node(expression.where)}"
    if expression.if_conditions:
        text += " IF " + " AND ".join(_format_condition(c) for c in expression.if_conditions)
    return text


def _format_node(node: Node) -> str:
    if isinstance(node, Condition):
        return _format_condition(node)
    if isinstance(node, And):
        return " AND ".join(f"({_format_node(p)})" if isinstance(p, Or) else _format_node(p) for p in node.parts)
    return " OR ".join(_format_node(p) for p in node.parts)


def _format_condition(condition: Condition) -> str:
    if condition.op in (IN, NOT_IN):
        (first, *_rest) = condition.operands
        if isinstance(first, Field):
            values = str(first)
        else:
            values = "(" + ", ".join(_format_operand(v) for v in condition.operands) + ")"
        return f"{condition.field} {condition.op} {values}"
    return f"{condition.field} {condition.op} {_format_operand(condition.operands[0])}"


def _format_operand(operand: Operand) -> str:
    if isinstance(operand, Param):
        return f"${operand.name}"
    if isinstance(operand, Field):
        return str(operand)
    if isinstance(operand, str):
        return '"' + operand.replace("\\", "\\\\").replace('"', '\\"') + '"'
    number = float(operand)
    return repr(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
