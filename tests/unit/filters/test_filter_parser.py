"""Parser of Personalize filter expressions: every documented form, precedence, exact errors, fuzz, round trip."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.filters import FilterSyntaxError, compile_filter, format_filter, parse_filter
from recsys.filters.syntax import (
    CURRENT_ITEM,
    CURRENT_USER,
    INTERACTIONS,
    ITEMS,
    And,
    Condition,
    Expression,
    Field,
    Or,
    Param,
    ParsedFilter,
)

GENRE = Field(ITEMS, "GENRE")


def cond(name, op, *operands, dataset=ITEMS):
    return Condition(Field(dataset, name), op, tuple(operands))


# Every form MISSION.md names, plus the examples of the Personalize developer guide.
DOCUMENTED = [
    "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
    "INCLUDE ItemID WHERE Items.DOWNLOADS < 20",
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream")',
    "EXCLUDE ItemID WHERE Items.NUMBER_OF_DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30",
    'INCLUDE ItemID WHERE Items.GENRE IN ("drama") | '
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
    'INCLUDE ItemID WHERE Items.CATEGORY IN ("watch") AND Items.DESCRIPTION IN ("luxury") IF CurrentUser.AGE > 18',
    "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
    "INCLUDE ItemID WHERE Items.PRICE <= $PRICE",
    "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $DATE",
    "INCLUDE ItemID WHERE Items.VALUE > ($VALUE)",
    'INCLUDE ItemID WHERE Items.MEMBERSHIP_LEVEL IN ("Premium") IF CurrentUser.MEMBERSHIP = $PREMIUM',
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
    'INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")',
    "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | "
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    "INCLUDE ItemID WHERE Items.PRICE >= 10 AND Items.PRICE != 15 AND Items.STOCK = 0",
]


@pytest.mark.parametrize("text", DOCUMENTED)
def test_every_documented_form_parses_and_prints_back_to_an_equal_tree(text):
    parsed = parse_filter(text)
    assert parse_filter(format_filter(parsed)) == parsed


def test_the_mission_examples_parse_to_the_expected_trees():
    assert parse_filter("EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)") == ParsedFilter(
        (Expression("EXCLUDE", ITEMS, cond("GENRE", "IN", Param("GENRE"))),)
    )
    assert parse_filter("INCLUDE ItemID WHERE Items.DOWNLOADS < 20").expressions[0].where == cond(
        "DOWNLOADS", "<", 20.0
    )
    events = parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream")').expressions[0]
    assert events.dataset == INTERACTIONS
    assert events.where == cond("EVENT_TYPE", "IN", "click", "stream", dataset=INTERACTIONS)
    guarded = parse_filter(DOCUMENTED[3]).expressions[0]
    assert guarded.if_conditions == (
        cond("AGE", ">", 18.0, dataset=CURRENT_USER),
        cond("AGE", "<", 30.0, dataset=CURRENT_USER),
    )
    chained = parse_filter(DOCUMENTED[4])
    assert [e.action for e in chained.expressions] == ["INCLUDE", "EXCLUDE"]
    related = parse_filter(DOCUMENTED[8]).expressions[0].where
    assert related == And(
        (cond("PRICE", "<", Field(CURRENT_ITEM, "PRICE")), cond("GENRE", "IN", Field(CURRENT_ITEM, "GENRE")))
    )


def test_and_binds_tighter_than_or_and_parentheses_override_it():
    a, b, c = (f'Items.{x} IN ("{x}")' for x in "ABC")
    ca, cb, cc = (cond(x, "IN", x) for x in "ABC")
    where = lambda text: parse_filter(f"INCLUDE ItemID WHERE {text}").expressions[0].where  # noqa: E731
    assert where(f"{a} OR {b} AND {c}") == Or((ca, And((cb, cc))))
    assert where(f"{a} AND {b} OR {c}") == Or((And((ca, cb)), cc))
    assert where(f"({a} OR {b}) AND {c}") == And((Or((ca, cb)), cc))
    assert where(f"{a} AND ({b} AND {c})") == And((ca, cb, cc))  # one canonical tree
    assert where(f"(({a}))") == ca


def test_keywords_and_dataset_names_are_case_insensitive_field_names_are_not():
    parsed = parse_filter('exclude itemid where items.Genre in ("x") if currentuser.age > 3')
    expression = parsed.expressions[0]
    assert expression.action == "EXCLUDE"
    assert expression.where == cond("Genre", "IN", "x")
    assert expression.if_conditions[0].field == Field(CURRENT_USER, "age")


def test_string_escapes_and_numbers():
    where = parse_filter(r'INCLUDE ItemID WHERE Items.T IN ("say \"hi\"", "back\\slash")').expressions[0].where
    assert where.operands == ('say "hi"', "back\\slash")
    assert parse_filter("INCLUDE ItemID WHERE Items.P > -2.5e1").expressions[0].where.operands == (-25.0,)


MALFORMED = [
    ("", "at column 1: expected INCLUDE or EXCLUDE, found end of expression"),
    ("   ", "at column 4: expected INCLUDE or EXCLUDE, found end of expression"),
    ('REMOVE ItemID WHERE Items.A IN ("x")', "at column 1: expected INCLUDE or EXCLUDE, found 'REMOVE'"),
    ('EXCLUDE UserID WHERE Items.A IN ("x")', "at column 9: expected ItemID, found 'UserID'"),
    ('EXCLUDE ItemID Items.A IN ("x")', "at column 16: expected WHERE, found 'Items'"),
    ('EXCLUDE ItemID WHERE Items GENRE IN ("x")', "at column 28: expected '.' after Items, found 'GENRE'"),
    (
        "EXCLUDE ItemID WHERE Items.GENRE GENRE",
        "at column 34: expected IN, NOT IN or a comparison operator, found 'GENRE'",
    ),
    (
        "EXCLUDE ItemID WHERE Users.AGE > 3",
        "at column 22: expected a field such as Items.<FIELD> or Interactions.EVENT_TYPE, found 'Users'",
    ),
    ('EXCLUDE ItemID WHERE Items.GENRE NOT ("x")', "at column 38: expected IN after NOT, found '('"),
    (
        'EXCLUDE ItemID WHERE Items.GENRE IN "x"',
        "at column 37: expected '(' or CurrentItem.<FIELD> after IN, found '\"x\"'",
    ),
    (
        "EXCLUDE ItemID WHERE Items.GENRE IN ()",
        "at column 38: expected a quoted string, a $PARAMETER or CurrentItem.<FIELD>, found ')'",
    ),
    ('EXCLUDE ItemID WHERE Items.GENRE IN ("a" "b")', "at column 42: expected ',' or ')', found '\"b\"'"),
    ('EXCLUDE ItemID WHERE Items.GENRE IN ("a", 3)', "at column 43: expected a quoted string, found '3'"),
    ('EXCLUDE ItemID WHERE Items.GENRE IN ("a"', "at column 41: expected ',' or ')', found end of expression"),
    (
        "EXCLUDE ItemID WHERE Items.GENRE IN ($G, $H)",
        "at column 40: expected ')' after a $PARAMETER (one parameter per list), found ','",
    ),
    (
        "EXCLUDE ItemID WHERE Items.GENRE NOT IN ($G)",
        "at column 42: expected quoted strings after NOT IN (a $PARAMETER needs IN with the opposite action), "
        "found '$G'",
    ),
    ("EXCLUDE ItemID WHERE Items.GENRE IN ('x')", 'at column 38: expected a double-quoted string, found "\'"'),
    (
        'EXCLUDE ItemID WHERE Items.GENRE IN ("x)',
        "at column 38: expected a closing '\"' for this string, found end of expression",
    ),
    ("EXCLUDE ItemID WHERE Items.P > $", "at column 32: expected a parameter name after '$', found end of expression"),
    ("EXCLUDE ItemID WHERE Items.P # 3", "at column 30: expected a keyword, field, value or operator, found '#'"),
    (
        'INCLUDE ItemID WHERE Items.DOWNLOADS < "20"',
        "at column 40: expected a number, a $PARAMETER or CurrentItem.<FIELD> after '<', found '\"20\"'",
    ),
    (
        "INCLUDE ItemID WHERE Items.DOWNLOADS = GENRE",
        "at column 40: expected a number, a quoted string, a $PARAMETER or CurrentItem.<FIELD> after '=', "
        "found 'GENRE'",
    ),
    ("INCLUDE ItemID WHERE Items.P > (3)", "at column 33: expected a $PARAMETER inside '(' after '>', found '3'"),
    (
        'INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("click")',
        "at column 47: expected an Items field like the first condition (chain other datasets with '|'), "
        "found 'Interactions.EVENT_TYPE'",
    ),
    (
        "INCLUDE ItemID WHERE Interactions.EVENT_VALUE > 3",
        "at column 22: expected Interactions.EVENT_TYPE (the only filterable interaction field), "
        "found 'Interactions.EVENT_VALUE'",
    ),
    (
        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE = "click"',
        "at column 46: expected IN or NOT IN after Interactions.EVENT_TYPE, found '='",
    ),
    (
        "INCLUDE ItemID WHERE CurrentUser.AGE > 3",
        "at column 22: expected an Items or Interactions field (CurrentUser goes after IF), found 'CurrentUser.AGE'",
    ),
    (
        "INCLUDE ItemID WHERE CurrentItem.PRICE > 3",
        "at column 22: expected an Items or Interactions field (CurrentItem is only a value), "
        "found 'CurrentItem.PRICE'",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") IF Items.B > 3',
        "at column 42: expected CurrentUser.<FIELD> in an IF condition, found 'Items.B'",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") IF CurrentUser.A = 1 OR CurrentUser.B = 2',
        "at column 60: expected AND, '|' or end of expression (IF conditions can only be joined with AND), found 'OR'",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") IF CurrentUser.A > 1 IF CurrentUser.B > 2',
        "at column 60: expected AND, '|' or end of expression, found 'IF'",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") Items.B > 3',
        "at column 39: expected AND, OR, IF, '|' or end of expression, found 'Items'",
    ),
    (
        'INCLUDE ItemID WHERE (Items.A IN ("x") OR Items.B < 3',
        "at column 54: expected ')', AND or OR, found end of expression",
    ),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x"))',
        "at column 38: expected AND, OR, IF, '|' or end of expression, found ')'",
    ),
    ('INCLUDE ItemID WHERE Items.A IN ("x") |', "at column 40: expected INCLUDE or EXCLUDE, found end of expression"),
    (
        'INCLUDE ItemID WHERE Items.A IN ("x") AND',
        "at column 42: expected a field such as Items.<FIELD> or Interactions.EVENT_TYPE, found end of expression",
    ),
    ("INCLUDE ItemID WHERE Items.", "at column 28: expected a field name after 'Items.', found end of expression"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_expressions_say_where_and_what_was_expected(text, message):
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter(text)
    assert str(caught.value) == message
    assert caught.value.column == int(message.split()[2].rstrip(":"))


def test_expressions_longer_than_personalize_allows_are_rejected():
    text = "INCLUDE ItemID WHERE " + " OR ".join(['Items.A IN ("x")'] * 200)
    with pytest.raises(
        FilterSyntaxError, match=rf"^at column 2501: expected at most 2500 characters, found {len(text)}$"
    ):
        parse_filter(text)


@pytest.mark.parametrize("depth", [33, 300, 1200])
def test_parentheses_nested_deeper_than_the_limit_are_a_syntax_error_not_a_recursion_error(depth):
    text = "EXCLUDE ItemID WHERE " + "(" * depth + 'Items.A IN ("x")' + ")" * depth
    with pytest.raises(FilterSyntaxError) as caught:
        compile_filter(text)
    assert str(caught.value) == f"at column {22 + 32}: expected at most 32 levels of parentheses"


def test_parentheses_up_to_the_limit_parse_and_print_back():
    text = "EXCLUDE ItemID WHERE " + "(" * 32 + 'Items.A IN ("x") OR Items.B IN ("y")' + ")" * 32
    assert format_filter(parse_filter(text)) == 'EXCLUDE ItemID WHERE Items.A IN ("x") OR Items.B IN ("y")'


@pytest.mark.parametrize(("text", "column", "found"), [
    ('EXCLUDE ItemID WHERE Items.A IN ("\ud800")', 35, "U+D800, a lone surrogate (not valid Unicode)"),
    ('EXCLUDE ItemID WHERE Items.A IN ("a\x00")', 36, "U+0000, a control character"),
])
def test_text_that_is_not_well_formed_is_a_syntax_error_at_its_column(text, column, found):
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    assert str(caught.value) == f"at column {column}: expected text, found {found}"


def test_a_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="must be a str, not NoneType"):
        parse_filter(None)


# ---------------------------------------------------------------------------------------------------- fuzz

TOKENS = [
    "INCLUDE",
    "EXCLUDE",
    "ItemID",
    "WHERE",
    "IF",
    "AND",
    "OR",
    "NOT",
    "IN",
    "Items",
    "Interactions",
    "CurrentUser",
    "CurrentItem",
    ".",
    "GENRE",
    "EVENT_TYPE",
    "AGE",
    "(",
    ")",
    ",",
    "|",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    '"x"',
    '"a\\"b"',
    "3",
    "-2.5",
    "$P",
    "$",
    '"',
    "'",
    "#",
    "",
    "\n",
]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_only_ever_raises_filter_syntax_error(text):
    try:
        parse_filter(text)
    except FilterSyntaxError as error:
        assert 1 <= error.column <= len(text) + 1
        assert str(error).startswith(f"at column {error.column}: expected ")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30), st.sampled_from([" ", ""]))
def test_token_soup_only_ever_raises_filter_syntax_error(tokens, glue):
    text = glue.join(tokens)
    try:
        parsed = parse_filter(text)
    except FilterSyntaxError as error:
        assert 1 <= error.column <= len(text) + 1
    else:
        assert parse_filter(format_filter(parsed)) == parsed


# ---------------------------------------------------------------------------------------------------- round trip

field_names = st.sampled_from(["GENRE", "PRICE", "a_1", "_x", "IN", "Where"])
params = st.sampled_from(["GENRE", "P", "0", "max_price"]).map(Param)
strings = st.text(st.sampled_from('ab \\"|*,()$\n\u00e9\u4e2d'), max_size=5)
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6).map(float)
current_items = field_names.map(lambda n: Field(CURRENT_ITEM, n))


def conditions(dataset):
    fields = field_names.map(lambda n: Field(dataset, n))
    in_operands = st.one_of(
        st.lists(strings, min_size=1, max_size=3).map(tuple),
        params.map(lambda p: (p,)),
        current_items.map(lambda f: (f,)),
    )
    not_in_operands = st.one_of(st.lists(strings, min_size=1, max_size=3).map(tuple), current_items.map(lambda f: (f,)))
    ordering = st.tuples(fields, st.sampled_from(["<", "<=", ">", ">="]), st.one_of(numbers, params, current_items))
    equality = st.tuples(fields, st.sampled_from(["=", "!="]), st.one_of(numbers, strings, params, current_items))
    return st.one_of(
        st.builds(lambda f, o: Condition(f, "IN", o), fields, in_operands),
        st.builds(lambda f, o: Condition(f, "NOT IN", o), fields, not_in_operands),
        st.one_of(ordering, equality).map(lambda t: Condition(t[0], t[1], (t[2],))),
    )


def event_conditions():
    field = Field(INTERACTIONS, "EVENT_TYPE")
    return st.one_of(
        st.builds(
            lambda o: Condition(field, "IN", o),
            st.one_of(st.lists(strings, min_size=1, max_size=3).map(tuple), params.map(lambda p: (p,))),
        ),
        st.builds(lambda o: Condition(field, "NOT IN", tuple(o)), st.lists(strings, min_size=1, max_size=3)),
    )


def joined(kind, parts):
    flat = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


def trees(leaves):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=2, max_size=3).map(lambda ps: joined(And, ps)),
            st.lists(children, min_size=2, max_size=3).map(lambda ps: joined(Or, ps)),
        ),
        max_leaves=5,
    )


expressions = st.one_of(
    st.tuples(st.just(ITEMS), trees(conditions(ITEMS))),
    st.tuples(st.just(INTERACTIONS), trees(event_conditions())),
).flatmap(
    lambda pair: st.builds(
        lambda action, guards: Expression(action, pair[0], pair[1], tuple(guards)),
        st.sampled_from(["INCLUDE", "EXCLUDE"]),
        st.lists(conditions(CURRENT_USER), max_size=2),
    )
)


@settings(max_examples=150, deadline=None)
@given(st.lists(expressions, min_size=1, max_size=3))
def test_printing_then_parsing_gives_back_the_same_tree(chain):
    parsed = ParsedFilter(tuple(chain))
    text = format_filter(parsed)
    if len(text) <= 2500:
        assert parse_filter(text) == parsed
