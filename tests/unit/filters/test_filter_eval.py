"""Evaluation of filters: Personalize semantics for items, interactions, the current user and item, params, chains."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.filters import FilterParameterError, compile_filter, parse_param_values

ITEMS = {
    "a": {"GENRE": "horror|drama", "DOWNLOADS": 5, "PRICE": "9.5", "STUDIO": "s1"},
    "b": {"GENRE": "comedy", "DOWNLOADS": "50", "PRICE": 30, "STUDIO": "s2"},
    "c": {"GENRE": ["drama", "family"], "DOWNLOADS": 19.0, "PRICE": 12},
    "d": {"DOWNLOADS": None, "GENRE": ""},  # no values at all
}
CANDIDATES = ["a", "b", "c", "d", "unknown"]


def run(expression, **context):
    return compile_filter(expression).apply(CANDIDATES, items=ITEMS, **context)


def test_exclude_by_genre_parameter_matches_any_value_of_a_multi_valued_field():
    flt = "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)"
    assert run(flt, params={"GENRE": '"horror"'}) == ["b", "c", "d", "unknown"]
    assert run(flt, params={"GENRE": '"drama"'}) == ["b", "d", "unknown"]
    assert run(flt, params={"GENRE": '"comedy","family"'}) == ["a", "d", "unknown"]
    assert run(flt, params={"$GENRE": '"comedy"'}) == ["a", "c", "d", "unknown"]  # the key may carry the '$'


def test_include_by_a_numeric_threshold_reads_numbers_stored_as_text():
    assert run("INCLUDE ItemID WHERE Items.DOWNLOADS < 20") == ["a", "c"]
    assert run("INCLUDE ItemID WHERE Items.DOWNLOADS >= 19") == ["b", "c"]
    assert run("INCLUDE ItemID WHERE Items.PRICE <= $PRICE", params={"PRICE": "12"}) == ["a", "c"]


@pytest.mark.parametrize(
    "history",
    [
        {"a": {"CLICK"}, "c": ["view"], "b": "Stream"},
        [("a", "click"), ("c", "view"), ("b", "STREAM")],
    ],
)
def test_exclude_by_event_type_ignores_case_and_takes_either_history_shape(history):
    flt = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream")'
    assert run(flt, user_interactions=history) == ["c", "d", "unknown"]
    assert run('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', user_interactions=history) == ["a", "b", "c"]
    assert run('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', user_interactions=history) == [
        "b",
        "c",
        "d",
        "unknown",
    ]


def test_if_current_user_switches_an_expression_on_and_off():
    flt = "EXCLUDE ItemID WHERE Items.DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30"
    assert run(flt, current_user={"AGE": 25}) == ["b", "d", "unknown"]
    assert run(flt, current_user={"AGE": "25"}) == ["b", "d", "unknown"]
    assert run(flt, current_user={"AGE": 30}) == CANDIDATES
    assert run(flt, current_user={}) == CANDIDATES  # unknown age: the IF is false
    member = 'INCLUDE ItemID WHERE Items.STUDIO IN ("s1") IF CurrentUser.MEMBERSHIP = $TIER'
    assert run(member, current_user={"MEMBERSHIP": "gold"}, params={"TIER": '"gold"'}) == ["a"]
    assert run(member, current_user={"MEMBERSHIP": "free"}, params={"TIER": '"gold"'}) == CANDIDATES


def test_chained_expressions_combine_as_personalize_documents():
    include_a = 'INCLUDE ItemID WHERE Items.GENRE IN ("horror")'
    include_b = 'INCLUDE ItemID WHERE Items.GENRE IN ("comedy")'
    exclude_c = "EXCLUDE ItemID WHERE Items.DOWNLOADS < 10"
    exclude_d = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    history = {"b": {"click"}}
    assert run(f"{include_a} | {include_b}") == ["a", "b"]  # union of includes
    assert run(f"{exclude_c} | {exclude_d}", user_interactions=history) == ["c", "d", "unknown"]  # union of excludes
    assert run(f"{include_a} | {include_b} | {exclude_c} | {exclude_d}", user_interactions=history) == []
    assert run(f"{include_b} | {exclude_c}") == ["b"]  # include minus exclude
    for order in itertools.permutations([include_a, include_b, exclude_c, exclude_d]):
        assert run(" | ".join(order), user_interactions={"a": {"view"}}) == ["b"]


def test_and_or_precedence_is_evaluated_as_parsed():
    flt = 'INCLUDE ItemID WHERE Items.STUDIO IN ("s2") OR Items.GENRE IN ("drama") AND Items.DOWNLOADS > 10'
    assert run(flt) == ["b", "c"]  # s2, or (drama and > 10): a is drama but has 5 downloads
    grouped = 'INCLUDE ItemID WHERE (Items.STUDIO IN ("s2") OR Items.GENRE IN ("drama")) AND Items.DOWNLOADS > 10'
    assert run(grouped) == ["b", "c"]
    assert run(
        'INCLUDE ItemID WHERE (Items.STUDIO IN ("s1") OR Items.GENRE IN ("drama")) AND Items.DOWNLOADS < 10'
    ) == ["a"]


def test_negations_and_missing_fields():
    assert run('INCLUDE ItemID WHERE Items.GENRE NOT IN ("drama")') == ["b"]  # d and unknown have no GENRE
    assert run("INCLUDE ItemID WHERE Items.DOWNLOADS != 50") == ["a", "c"]
    assert run('INCLUDE ItemID WHERE Items.STUDIO = "s1"') == ["a"]
    assert run('EXCLUDE ItemID WHERE Items.STUDIO != "s1"') == ["a", "c", "d", "unknown"]


def test_current_item_conditions_for_related_items():
    flt = "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
    assert run(flt, current_item={"PRICE": 20, "GENRE": "drama|comedy"}) == ["a", "c"]
    assert run(flt, current_item={"GENRE": "drama"}) == []  # the current item has no price: nothing compares
    with pytest.raises(FilterParameterError, match="missing value for CurrentItem"):
        run(flt)


def test_missing_parameters_fail_an_include_and_switch_an_exclude_off():
    with pytest.raises(FilterParameterError, match=r"^missing value for \$GENRE: the INCLUDE expression needs it$"):
        run("INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)")
    with pytest.raises(FilterParameterError, match=r"^missing value for \$G, \$P: the INCLUDE expression needs it$"):
        run("INCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.PRICE < $P", params={"G": "  "})
    assert run("EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)") == CANDIDATES
    flt = compile_filter("EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | INCLUDE ItemID WHERE Items.PRICE < $MAX")
    assert flt.parameters == ("GENRE", "MAX")
    assert flt.missing_parameters({"MAX": "3"}) == ("GENRE",)


@pytest.mark.parametrize(
    ("expression", "params", "message"),
    [
        (
            "INCLUDE ItemID WHERE Items.PRICE < $P",
            {"P": '"cheap"'},
            "parameter $P must be a number for '<', got 'cheap'",
        ),
        ("INCLUDE ItemID WHERE Items.PRICE < $P", {"P": "cheap"}, "parameter $P must be a number for '<', got 'cheap'"),
        ("INCLUDE ItemID WHERE Items.PRICE = $P", {"P": "1,2"}, "parameter $P must be one value for '=', got 2"),
        (
            "INCLUDE ItemID WHERE Items.GENRE IN ($G)",
            {"G": '"a",,"b"'},
            'parameter $G: expected a value at character 5 of \'"a",,"b"\'',
        ),
        (
            "INCLUDE ItemID WHERE Items.GENRE IN ($G)",
            {"G": '"a" "b"'},
            "parameter $G: expected ',' between values at character 5 of '\"a\" \"b\"'",
        ),
    ],
)
def test_malformed_parameter_values_are_clear_errors(expression, params, message):
    with pytest.raises(FilterParameterError) as caught:
        run(expression, params=params)
    assert str(caught.value) == message


def test_parameter_value_format():
    assert parse_param_values("G", '"sci, fi", "say \\"hi\\"",drama , 3') == (
        ("sci, fi", True),
        ('say "hi"', True),
        ("drama", False),
        ("3", False),
    )
    assert parse_param_values("G", ["a", 2]) == (("a", True), ("2", False))
    assert parse_param_values("G", 20) == (("20", False),)


def test_quoted_text_compares_as_text_and_bare_numbers_as_numbers():
    assert run("INCLUDE ItemID WHERE Items.PRICE = $P", params={"P": "30.0"}) == ["b"]
    assert run("INCLUDE ItemID WHERE Items.PRICE = $P", params={"P": '"9.5"'}) == ["a"]


# ---------------------------------------------------------------------------------------------------- properties

VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "x", "y", "x|y", "3", "-1.5", "10"]),
    st.integers(-5, 15),
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=2),
)
rows = st.dictionaries(st.sampled_from(["A", "B"]), VALUES, max_size=2)
catalogue = st.dictionaries(st.sampled_from([f"i{n}" for n in range(8)]), rows, max_size=8)
leaf = st.one_of(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(st.sampled_from(["x", "y", "3"]), min_size=1, max_size=2),
    ),
    st.tuples(
        st.sampled_from(["A", "B"]), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.sampled_from([-1.5, 3, 10])
    ),
)
tree = st.recursive(
    leaf, lambda kids: st.tuples(st.sampled_from(["AND", "OR"]), st.lists(kids, min_size=2, max_size=3)), max_leaves=5
)


def to_text(node):
    if node[0] in ("AND", "OR"):
        return "(" + f" {node[0]} ".join(to_text(k) for k in node[1]) + ")"
    name, op, operand = node
    if op in ("IN", "NOT IN"):
        return f"Items.{name} {op} (" + ", ".join(f'"{v}"' for v in operand) + ")"
    return f"Items.{name} {op} {operand}"


def reference(node, row):
    """A direct reading of the README semantics, written independently of the compiled closures."""
    if node[0] == "AND":
        return all(reference(k, row) for k in node[1])
    if node[0] == "OR":
        return any(reference(k, row) for k in node[1])
    name, op, operand = node
    raw = row.get(name)
    values = raw.split("|") if isinstance(raw, str) else raw if isinstance(raw, list) else [] if raw is None else [raw]
    values = [v for v in values if v != ""]
    if not values:
        return False
    if op in ("IN", "NOT IN"):
        hit = any(str(v) in operand for v in values)
        return hit if op == "IN" else not hit

    def number(v):
        try:
            return float(v)
        except ValueError:
            return None

    compare = {
        "=": float.__eq__,
        "!=": float.__eq__,
        "<": float.__lt__,
        "<=": float.__le__,
        ">": float.__gt__,
        ">=": float.__ge__,
    }[op]
    hit = any(number(v) is not None and compare(float(number(v)), float(operand)) for v in values)
    return not hit if op == "!=" else hit


@settings(max_examples=300, deadline=None)
@given(catalogue, tree, st.sampled_from(["INCLUDE", "EXCLUDE"]), st.permutations([f"i{n}" for n in range(9)]))
def test_compiled_filters_agree_with_a_reference_reading_and_keep_candidate_order(items, node, action, candidates):
    flt = compile_filter(f"{action} ItemID WHERE {to_text(node)}")
    kept = flt.apply(candidates, items=items)
    expected = [c for c in candidates if reference(node, items.get(c, {})) == (action == "INCLUDE")]
    assert kept == expected
