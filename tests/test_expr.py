"""Tests for count expressions (``flyautoscaler._expr``)."""

from __future__ import annotations

import decimal
import math
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import flyautoscaler as fas
from flyautoscaler._expr import (
    ARITY,
    FUNCTIONS,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
)

# --- operators and syntax -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1", 1.0),
        ("1 + 2", 3.0),
        ("5 - 7", -2.0),
        ("3 * 4", 12.0),
        ("7 / 2", 3.5),
        ("7 % 3", 1.0),
        ("-7 % 3", -1.0),
        ("2 ** 3", 8.0),
        ("2 ^ 3", 8.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("2 ** 3 ** 2", 512.0),
        ("(2 ^ 3) ^ 2", 64.0),
        ("-2 ** 2", -4.0),
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("16 / 4 / 2", 2.0),
        ("+3", 3.0),
        ("--3", 3.0),
        ("1.5e1", 15.0),
        (".5", 0.5),
        ("1_000", 1000.0),
        ("((((1))))", 1.0),
    ],
)
def test_arithmetic(source, expected):
    """Arithmetic operators, precedence and associativity follow Expr-lang."""
    assert fas.compile_expression(source).evaluate({}) == expected


def test_caret_is_power_not_xor():
    """`^` is exponentiation, never Python's bitwise XOR."""
    assert fas.compile_expression("2 ^ 3").evaluate({}) == 8.0
    assert fas.compile_expression("2 ^ 3").evaluate({}) != 2 ^ 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2 ? 1 : 0", 1.0),
        ("2 < 1 ? 1 : 0", 0.0),
        ("1 <= 1 ? 1 : 0", 1.0),
        ("2 > 1 ? 1 : 0", 1.0),
        ("1 >= 2 ? 1 : 0", 0.0),
        ("1 == 1 ? 1 : 0", 1.0),
        ("1 != 1 ? 1 : 0", 0.0),
        ("true && false ? 1 : 0", 0.0),
        ("true || false ? 1 : 0", 1.0),
        ("!true ? 1 : 0", 0.0),
        ("!(1 > 2) ? 1 : 0", 1.0),
        ("true and false ? 1 : 0", 0.0),
        ("false or true ? 1 : 0", 1.0),
        ("not false ? 1 : 0", 1.0),
        ("1 < 2 && 3 < 4 ? 5 : 6", 5.0),
        ("1 > 2 || 3 > 4 ? 5 : 6", 6.0),
    ],
)
def test_comparisons_and_logic(source, expected):
    """Comparisons and `&& || !` / `and or not` work inside a ternary."""
    assert fas.compile_expression(source).evaluate({}) == expected


@pytest.mark.parametrize(
    ("x", "expected"),
    [(1.0, 10.0), (5.0, 20.0), (50.0, 30.0)],
)
def test_nested_ternary_is_right_associative(x, expected):
    """`a ? b : c ? d : e` reads as `a ? b : (c ? d : e)`."""
    expr = fas.compile_expression("x < 3 ? 10 : x < 10 ? 20 : 30")
    assert expr.evaluate({"x": x}) == expected


def test_ternary_in_branches():
    """Ternaries nest inside the true branch as well."""
    expr = fas.compile_expression("x > 0 ? (x > 5 ? 2 : 1) : 0")
    assert [expr.evaluate({"x": v}) for v in (-1.0, 3.0, 9.0)] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("abs(-3)", 3.0),
        ("ceil(2.1)", 3.0),
        ("ceil(-2.1)", -2.0),
        ("floor(2.9)", 2.0),
        ("floor(-2.1)", -3.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(2.4)", 2.0),
        ("min(4, 7)", 4.0),
        ("max(4, 7)", 7.0),
        ("min(9, 2, 5)", 2.0),
        ("max(1, 8, 3, 4)", 8.0),
        ("max(3)", 3.0),
        ("int(2.9)", 2.0),
        ("int(-2.9)", -2.0),
        ("float(2)", 2.0),
        ("max(min(10, 4), 2) * 2", 8.0),
    ],
)
def test_functions(source, expected):
    """The allowed functions behave as documented."""
    assert fas.compile_expression(source).evaluate({}) == expected


def test_variadic_max_over_metric_names():
    """`max(a, b, c)` takes any number of metric values."""
    expr = fas.compile_expression("max(a, b, c)")
    assert expr.evaluate({"a": 1.0, "b": 9.0, "c": 3.0}) == 9.0
    assert expr.names == frozenset({"a", "b", "c"})


def test_names_lists_metric_names_not_functions():
    """`.names` holds the metric names and no function or keyword."""
    expr = fas.compile_expression("ceil(queue_depth / 10) + (busy > 0 ? 1 : 0) + 2")
    assert expr.names == frozenset({"queue_depth", "busy"})


def test_evaluate_accepts_int_values():
    """Metric values given as ints are used as floats."""
    assert fas.compile_expression("x / 2").evaluate({"x": 3}) == 1.5


def test_evaluate_ignores_unused_values():
    """Values for names the expression does not use are ignored."""
    assert fas.compile_expression("x").evaluate({"x": 2.0, "other": 5.0}) == 2.0


# --- float semantics ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [("1 / 0", math.inf), ("-1 / 0", -math.inf), ("1 / -0", -math.inf)],
)
def test_division_by_zero_is_infinite(source, expected):
    """`x / 0` is ±Inf, as in the upstream language, not ZeroDivisionError."""
    assert fas.compile_expression(source).evaluate({}) == expected


def test_zero_over_zero_is_nan():
    """`0 / 0` is NaN."""
    assert math.isnan(fas.compile_expression("0 / 0").evaluate({}))


def test_modulo_by_zero_is_nan():
    """`x % 0` is NaN, not ZeroDivisionError."""
    assert math.isnan(fas.compile_expression("5 % 0").evaluate({}))


def test_huge_power_evaluates_to_inf():
    """`999999 ** 999999` is +Inf, computed in floats."""
    assert fas.compile_expression("999999 ** 999999").evaluate({}) == math.inf


def test_tower_of_powers_evaluates_to_inf():
    """`9 ** 9 ** 9 ** 9` is +Inf without building a huge integer."""
    assert fas.compile_expression("9 ** 9 ** 9 ** 9").evaluate({}) == math.inf


@pytest.mark.parametrize("source", ["999999 ** 999999", "9 ** 9 ** 9 ** 9"])
def test_huge_power_evaluate_int_raises_inf(source):
    """A huge power as a count raises ExprInfError."""
    with pytest.raises(fas.ExprInfError):
        fas.compile_expression(source).evaluate_int({})


# --- evaluate_int -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.5, 3),
        (2.6, 3),
        (2.4, 2),
        (3.5, 4),
        (0.5, 1),
        (0.49999999999999994, 0),
        (0.0, 0),
        (-0.0, 0),
        (-0.4, 0),
        (-2.5, 0),
        (-7.0, 0),
        (4503599627370497.0, 4503599627370497),
        (1e20, 100000000000000000000),
    ],
)
def test_evaluate_int_rounds_half_away_from_zero_and_clamps(value, expected):
    """Counts round half away from zero and negatives become 0."""
    assert fas.compile_expression("x").evaluate_int({"x": value}) == expected


def test_evaluate_int_returns_int():
    """evaluate_int returns a real int."""
    assert type(fas.compile_expression("2.5").evaluate_int({})) is int


@pytest.mark.parametrize("source", ["0 / 0", "x + 1"])
def test_evaluate_int_nan_raises(source):
    """A NaN result raises ExprNaNError."""
    with pytest.raises(fas.ExprNaNError):
        fas.compile_expression(source).evaluate_int({"x": math.nan})


@pytest.mark.parametrize("source", ["1 / 0", "-1 / 0", "x"])
def test_evaluate_int_inf_raises(source):
    """A +Inf or -Inf result raises ExprInfError."""
    with pytest.raises(fas.ExprInfError):
        fas.compile_expression(source).evaluate_int({"x": -math.inf})


def test_expression_error_subclasses():
    """The NaN, Inf and required errors are ExpressionErrors."""
    for cls in (fas.ExprNaNError, fas.ExprInfError, fas.ExprRequiredError):
        assert issubclass(cls, fas.ExpressionError)


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["true", "1 < 2", "!false", "true || false"])
def test_bool_result_raises(source):
    """An expression must produce a number, not a bool."""
    with pytest.raises(fas.ExpressionError, match="must produce a number"):
        fas.compile_expression(source).evaluate({})


@pytest.mark.parametrize(
    "source",
    [
        "1 + true",
        "1 == true",
        "1 < 2 < 3",
        "1 ? 2 : 3",
        "!1",
        "1 && 2",
        "-true",
        "abs(true)",
    ],
)
def test_type_mismatch_raises(source):
    """Operators given the wrong type raise ExpressionError."""
    with pytest.raises(fas.ExpressionError):
        fas.compile_expression(source).evaluate({})


@pytest.mark.parametrize("source", ["min()", "max()", "abs(1, 2)", "round()"])
def test_wrong_argument_count_raises(source):
    """Calling a function with the wrong number of arguments raises."""
    with pytest.raises(fas.ExpressionError, match="argument"):
        fas.compile_expression(source).evaluate({})


@pytest.mark.parametrize(
    ("source", "position"),
    [
        ("1 +", 3),
        ("1 + * 2", 4),
        ("x y", 2),
        ("(1 + 2", 6),
        ("1 + 2)", 5),
        ("()", 1),
        ("1 ? 2", 5),
        ("max(1,", 6),
    ],
)
def test_syntax_error_has_position(source, position):
    """A syntax error carries its offset and names the column in the message."""
    with pytest.raises(fas.ExpressionError) as info:
        fas.compile_expression(source)
    assert info.value.position == position
    assert f"column {position + 1}" in str(info.value)
    assert info.value.expression == source


def test_unknown_name_at_compile():
    """known_names rejects an unknown name, naming it and listing the known ones."""
    with pytest.raises(fas.ExpressionError, match="unknown name 'y'") as info:
        fas.compile_expression("x + y", known_names=["x", "queue_depth"])
    assert "queue_depth" in str(info.value)
    assert "x" in str(info.value)


def test_known_names_accepts_known():
    """known_names accepts an expression that uses only known names."""
    expr = fas.compile_expression("x + y", known_names={"x", "y", "z"})
    assert expr.evaluate({"x": 1.0, "y": 2.0}) == 3.0


def test_unknown_name_at_evaluate():
    """Evaluating without a value for a name names it and lists known metrics."""
    expr = fas.compile_expression("a + missing_metric")
    with pytest.raises(fas.ExpressionError, match="missing_metric") as info:
        expr.evaluate({"a": 1.0, "other": 2.0})
    assert "known metrics: a, other" in str(info.value)


def test_unknown_name_with_no_metrics():
    """With no metrics at all the message says so."""
    with pytest.raises(fas.ExpressionError, match="known metrics: none"):
        fas.compile_expression("x").evaluate({})


def test_check_names():
    """check_names raises for a name outside the known set and passes otherwise."""
    expr = fas.compile_expression("a * b")
    expr.check_names(["a", "b"])
    with pytest.raises(fas.ExpressionError, match="unknown name 'b'"):
        expr.check_names(["a"])


@pytest.mark.parametrize("source", ["", " ", "\t\n  "])
def test_empty_expression_is_required_error(source):
    """An empty or blank expression raises ExprRequiredError."""
    with pytest.raises(fas.ExprRequiredError):
        fas.compile_expression(source)


def test_non_string_raises():
    """A non-string source raises ExpressionError."""
    with pytest.raises(fas.ExpressionError, match="must be a string"):
        fas.compile_expression(1)  # type: ignore[arg-type]


# --- caching ------------------------------------------------------------------


def test_compile_is_cached():
    """Compiling the same text twice returns the same object."""
    source = "max(queue_depth / 5, 1) + 0"
    assert fas.compile_expression(source) is fas.compile_expression(source)


def test_cached_expression_still_checks_names():
    """A cached expression is still checked against known_names."""
    source = "cached_name_check + 1"
    fas.compile_expression(source)
    with pytest.raises(fas.ExpressionError, match="cached_name_check"):
        fas.compile_expression(source, known_names=["other"])


# --- hostile input ------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "x.__class__",
        "x.__class__.__mro__",
        "__import__",
        "__import__('os')",
        "__builtins__",
        "_ _",
        "open(1)",
        "eval(1)",
        "exec(1)",
        "getattr(x, 1)",
        "[x for x in y]",
        "{x: 1}",
        "x[0]",
        "lambda: 1",
        "lambda x: x",
        "x = 1",
        "(x := 1)",
        "x if true else 1",
        '"a" * 10**9',
        "'a' * 10**9",
        "1; 2",
        "`1`",
        "x @ y",
        "~x",
        "x & y",
        "x | y",
        "import os",
        "None",
        "True",
        "nil",
        "1 in x",
        "x.y",
        "max.__call__",
    ],
)
def test_hostile_input_raises(source):
    """Python constructs outside the language raise ExpressionError at compile."""
    with pytest.raises(fas.ExpressionError):
        fas.compile_expression(source)


def test_deep_parentheses_raise():
    """500 nested parentheses raise ExpressionError, not RecursionError."""
    with pytest.raises(fas.ExpressionError, match="nested deeper"):
        fas.compile_expression("(" * 500 + "1" + ")" * 500)


def test_deep_unary_raises():
    """A long run of unary operators raises ExpressionError."""
    with pytest.raises(fas.ExpressionError, match="nested deeper"):
        fas.compile_expression("-" * 500 + "1")


def test_deep_calls_raise():
    """Deeply nested function calls raise ExpressionError."""
    with pytest.raises(fas.ExpressionError, match="nested deeper"):
        fas.compile_expression("abs(" * 300 + "1" + ")" * 300)


def test_long_sum_is_too_deep():
    """A 999-term sum builds a tree deeper than allowed and raises."""
    source = "+".join(["1"] * 999)
    assert len(source) <= MAX_EXPRESSION_LENGTH
    with pytest.raises(fas.ExpressionError, match="nested deeper"):
        fas.compile_expression(source)


def test_moderate_nesting_is_fine():
    """Nesting well under the limit compiles and evaluates."""
    depth = MAX_EXPRESSION_DEPTH // 4
    source = "(" * depth + "1" + ")" * depth
    assert fas.compile_expression(source).evaluate({}) == 1.0


def test_over_long_expression_raises():
    """An expression longer than MAX_EXPRESSION_LENGTH raises."""
    source = "1" + " " * MAX_EXPRESSION_LENGTH
    with pytest.raises(fas.ExpressionError, match="characters long"):
        fas.compile_expression(source)


def test_expression_at_max_length_compiles():
    """An expression of exactly MAX_EXPRESSION_LENGTH characters is accepted."""
    source = "1" + " " * (MAX_EXPRESSION_LENGTH - 1)
    assert fas.compile_expression(source).evaluate({}) == 1.0


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("x.y", "attribute access"),
        ("x = 1", "assignment"),
        ("1; 2", "only one expression"),
        ('"a"', "string literals"),
        ("open(1)", "unknown function 'open'"),
        ("__import__", "dunder"),
    ],
)
def test_hostile_input_messages(source, hint):
    """Rejections explain what is not allowed."""
    with pytest.raises(fas.ExpressionError, match=hint):
        fas.compile_expression(source)


# --- the Go suite, through the Reconciler ---------------------------------------


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        pytest.param("1", {}, 1, id="Constant"),
        pytest.param("2.6", {}, 3, id="Round"),
        pytest.param("x + y + 2", {"x": 4.0, "y": 7.0}, 13, id="Var"),
        pytest.param("min(x, y)", {"x": 4.0, "y": 7.0}, 4, id="Min"),
        pytest.param("max(x, y)", {"x": 4.0, "y": 7.0}, 7, id="Max"),
        pytest.param("-2", {}, 0, id="Neg"),
    ],
)
def test_reconciler_calc_min_started(source, values, expected):
    """Go's TestReconciler_CalcMinStartedMachineN cases give the same counts."""
    r = fas.Reconciler()
    r.min_started_machine_n = source
    for name, value in values.items():
        r.set_value(name, value)
    assert r.calc_min_started_machine_n() == expected


def test_reconciler_calc_blank_is_unset():
    """A blank expression means unset: the calc returns None."""
    r = fas.Reconciler()
    r.min_started_machine_n = ""
    assert r.calc_min_started_machine_n() is None
    assert r.calc_max_started_machine_n() is None
    assert r.calc_min_created_machine_n() is None
    assert r.calc_max_created_machine_n() is None


def test_reconciler_calc_nan():
    """A NaN metric makes the calc raise ExprNaNError."""
    r = fas.Reconciler()
    r.min_started_machine_n = "x + 1"
    r.set_value("x", math.nan)
    with pytest.raises(fas.ExprNaNError):
        r.calc_min_started_machine_n()


def test_reconciler_calc_inf():
    """`1 / 0` makes the calc raise ExprInfError."""
    r = fas.Reconciler()
    r.min_started_machine_n = "1 / 0"
    with pytest.raises(fas.ExprInfError):
        r.calc_min_started_machine_n()


@pytest.mark.parametrize(("source", "expected"), [("0", 1), ("-5", 1), ("3", 3)])
def test_reconciler_created_counts_at_least_one(source, expected):
    """Created-count targets are clamped to at least 1."""
    r = fas.Reconciler()
    r.min_created_machine_n = source
    r.max_created_machine_n = source
    assert r.calc_min_created_machine_n() == expected
    assert r.calc_max_created_machine_n() == expected


@pytest.mark.parametrize(("source", "expected"), [("0", 0), ("-5", 0), ("4", 4)])
def test_reconciler_max_started_not_clamped_to_one(source, expected):
    """Started-count targets may be 0."""
    r = fas.Reconciler()
    r.max_started_machine_n = source
    assert r.calc_max_started_machine_n() == expected


# --- properties -----------------------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False)


@given(a=_finite, b=_finite)
def test_addition_matches_python_floats(a, b):
    """`a + b` equals the float sum of the two metric values."""
    assert fas.compile_expression("a + b").evaluate({"a": a, "b": b}) == a + b


def _go_round(value: float) -> int:
    """Go's math.Round (half away from zero), computed exactly in decimal."""
    return int(decimal.Decimal(value).to_integral_value(decimal.ROUND_HALF_UP))


@given(value=_finite)
@example(value=0.49999999999999994)
@example(value=2.5)
@example(value=-2.5)
@example(value=4503599627370497.0)
@example(value=-4503599627370497.0)
def test_evaluate_int_matches_go_round(value):
    """evaluate_int rounds like Go's math.Round, then clamps at 0."""
    expected = max(0, _go_round(value))
    assert fas.compile_expression("x").evaluate_int({"x": value}) == expected


@given(value=_finite)
@example(value=0.49999999999999994)
@example(value=-0.5)
def test_round_function_matches_go_round(value):
    """The `round()` function agrees with Go's math.Round on finite values."""
    got = fas.compile_expression("round(x)").evaluate({"x": value})
    assert got == float(_go_round(value))


_TOKENS = st.sampled_from(
    [
        *"0123456789.+-*/%^<>=!?:(),[]{}\"'`;@~&|_ ",
        "**",
        "&&",
        "||",
        "==",
        "!=",
        "<=",
        ">=",
        "and",
        "or",
        "not",
        "true",
        "false",
        "x",
        "y",
        "abs",
        "ceil",
        "floor",
        "round",
        "min",
        "max",
        "int",
        "float",
        "open",
        "lambda",
        "__import__",
        "1e308",
        "1e",
        "1_",
    ]
)


def _compile_or_expression_error(source: str) -> None:
    try:
        expr = fas.compile_expression(source)
    except fas.ExpressionError:
        return
    try:
        expr.evaluate_int(dict.fromkeys(expr.names, 1.5))
    except fas.ExpressionError:
        return


@given(source=st.text(max_size=200))
def test_random_text_only_raises_expression_error(source):
    """Arbitrary text compiles or raises ExpressionError, never anything else."""
    _compile_or_expression_error(source)


@given(source=st.lists(_TOKENS, max_size=60).map("".join))
def test_random_tokens_only_raise_expression_error(source):
    """Strings of language tokens compile or raise ExpressionError, never else."""
    _compile_or_expression_error(source)


@given(source=st.lists(_TOKENS, max_size=40).map(" ".join))
def test_spaced_random_tokens_only_raise_expression_error(source):
    """Space-separated language tokens compile or raise only ExpressionError."""
    _compile_or_expression_error(source)


@pytest.mark.parametrize("source", ["max(0 / 0, 1)", "max(1, 0 / 0)", "min(2, 0 / 0)"])
def test_min_max_propagate_nan(source):
    """min and max are NaN when any argument is NaN, whatever the order."""
    with pytest.raises(fas.ExprNaNError):
        fas.compile_expression(source).evaluate_int({})


@pytest.mark.parametrize("source", ["1_", "1__0", "1_.5", "2 + 3_"])
def test_malformed_underscores_rejected(source):
    """Underscores only separate digit groups: 1_000 works, 1_ and 1__0 do not."""
    with pytest.raises(fas.ExpressionError):
        fas.compile_expression(source).evaluate({"_1": 1.0})


def test_limits_are_public():
    """The length and depth limits are exported."""
    assert fas.MAX_EXPRESSION_LENGTH == 2000
    assert fas.MAX_EXPRESSION_DEPTH == 100


# --- arguments and types, checked when compiled -----------------------------------


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("max()", "max() takes at least 1 argument, got 0", 0),
        ("min()", "min() takes at least 1 argument, got 0", 0),
        ("round(1,2,3)", "round() takes exactly 1 argument, got 3", 0),
        ("1 + abs()", "abs() takes exactly 1 argument, got 0", 4),
        ("ceil(true)", "ceil() argument 1 must be a number, got bool", 5),
        ("max(1, x > 2)", "max() argument 2 must be a number, got bool", 7),
        ("floor((x > 1))", "floor() argument 1 must be a number, got bool", 6),
    ],
)
def test_function_arguments_checked_at_compile(source, message, position):
    """Wrong argument counts and types fail at compile, naming function and place."""
    with pytest.raises(fas.ExpressionError) as info:
        fas.compile_expression(source)
    assert str(info.value) == (
        f"{message} at column {position + 1} in expression {source!r}"
    )
    assert info.value.position == position


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("1 + true", "'+' needs numbers, got bool"),
        ("-true", "unary '-' needs numbers, got bool"),
        ("!1", "'!' needs a bool, got number"),
        ("1 && 2", "'&&' needs a bool, got number"),
        ("1 ? 2 : 3", "the condition of '? :' needs a bool, got number"),
        ("1 < 2 < 3", "'<' needs numbers, got bool"),
        ("1 == true", "'==' cannot compare number with bool"),
        ("true", "expression must produce a number, got bool"),
        ("x > 1 || y", "'||' needs a bool, got number"),
    ],
)
def test_operator_types_checked_at_compile(source, message):
    """An operator given the wrong type fails at compile, not at each evaluation."""
    with pytest.raises(fas.ExpressionError, match="^" + re.escape(message)):
        fas.compile_expression(source)


@pytest.mark.parametrize(
    "source",
    [
        "max(1)",
        "min(x, y, 3)",
        "x > 1 ? ceil(x) : 0",
        "(x > 1) == (y > 1) ? 1 : 2",
        "round(x > 1 ? x : 0)",
        "float(1) + int(2.5) + abs(-1)",
    ],
)
def test_well_typed_expressions_compile(source):
    """Well-typed expressions still compile and evaluate."""
    fas.compile_expression(source).evaluate({"x": 2.0, "y": 0.0})


def test_mixed_ternary_is_checked_when_evaluated():
    """A ternary whose branches differ in type is only known when evaluated."""
    expr = fas.compile_expression("x > 1 ? 1 : true")
    assert expr.evaluate({"x": 2.0}) == 1.0
    with pytest.raises(fas.ExpressionError, match="must produce a number"):
        expr.evaluate({"x": 0.0})


def test_arity_table_covers_every_function():
    """Every function has an argument count, and only functions do."""
    assert set(ARITY) == set(FUNCTIONS)
