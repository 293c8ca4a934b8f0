"""Count expressions: the upstream (Expr-lang) syntax, evaluated by simpleeval.

An expression is parsed once, by the small parser below, into a Python ``ast``
tree that only contains the nodes the language allows; ``simpleeval`` then
evaluates that tree with float-only operators. Nothing ever reaches Python's
compiler, so attribute access, dunder names, lambdas, comprehensions and
assignments cannot even be written. All arithmetic is in floats, so no input
builds huge integers; the length and nesting limits bound parse and evaluation
time.
"""

from __future__ import annotations

import ast
import functools
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NoReturn

import simpleeval
from attrs import field, frozen

from flyautoscaler._errors import (
    ExpressionError,
    ExprInfError,
    ExprNaNError,
    ExprRequiredError,
)

__all__ = [
    "ARITY",
    "FUNCTIONS",
    "MAX_EXPRESSION_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "Expression",
    "compile_expression",
    "round_half_away_from_zero",
]

#: Longest expression accepted, in characters.
MAX_EXPRESSION_LENGTH: Final = 2000
#: Deepest syntax tree accepted (nesting of parentheses, operators and calls).
MAX_EXPRESSION_DEPTH: Final = 100

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|==|!=|<=|>=|&&|\|\||[-+*/%^<>!?:(),])
    """,
    re.VERBOSE | re.ASCII,
)

# Binary operators: precedence (higher binds tighter) and right-associativity,
# as in Expr-lang.
_BINARY: Final[dict[str, tuple[int, bool]]] = {
    "||": (10, False),
    "or": (10, False),
    "&&": (15, False),
    "and": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    ">": (20, False),
    "<=": (20, False),
    ">=": (20, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
}
_NOT_PRECEDENCE: Final = 50
_SIGN_PRECEDENCE: Final = 90

_ARITH: Final[dict[str, type[ast.operator]]] = {
    "+": ast.Add,
    "-": ast.Sub,
    "*": ast.Mult,
    "/": ast.Div,
    "%": ast.Mod,
    "**": ast.Pow,
    "^": ast.Pow,
}
_COMPARE: Final[dict[str, type[ast.cmpop]]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    ">": ast.Gt,
    "<=": ast.LtE,
    ">=": ast.GtE,
}
_WORD_OPERATORS: Final = frozenset({"and", "or", "not", "true", "false"})
# Words that would mean something in Python or Expr-lang but not here.
_RESERVED: Final = frozenset(
    {
        "lambda",
        "for",
        "in",
        "if",
        "else",
        "is",
        "import",
        "from",
        "def",
        "class",
        "return",
        "yield",
        "await",
        "async",
        "with",
        "while",
        "del",
        "global",
        "nonlocal",
        "assert",
        "raise",
        "try",
        "except",
        "finally",
        "pass",
        "break",
        "continue",
        "None",
        "True",
        "False",
        "nil",
        "let",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
    }
)


def _fail(message: str, source: str, position: int | None = None) -> NoReturn:
    where = f" at column {position + 1}" if position is not None else ""
    raise ExpressionError(
        f"{message}{where} in expression {source!r}",
        expression=source,
        position=position,
    )


@frozen
class _Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    pos: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            char = source[pos]
            hint = {
                ".": "attribute access is not allowed",
                "[": "indexing is not allowed",
                "]": "indexing is not allowed",
                "{": "maps are not allowed",
                "}": "maps are not allowed",
                '"': "string literals are not allowed",
                "'": "string literals are not allowed",
                "`": "string literals are not allowed",
                "=": "assignment is not allowed (use == to compare)",
                "&": "use && for logical and",
                "|": "use || for logical or",
                ";": "only one expression is allowed",
                "@": "'@' is not an operator here",
                "~": "'~' is not an operator here",
            }.get(char, "unexpected character")
            _fail(f"{hint}: {char!r}", source, pos)
        kind = match.lastgroup
        if kind is None:  # pragma: no cover - every alternative is named
            _fail("unexpected input", source, pos)
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


class _Parser:
    """Precedence-climbing parser producing a restricted Python ``ast`` tree."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.names: set[str] = set()
        # Where each argument of each call starts (by id of the Call node).
        self.arg_starts: dict[int, list[int]] = {}

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, message: str, token: _Token | None = None) -> NoReturn:
        token = token or self.token
        _fail(message, self.source, token.pos)

    def unexpected(self) -> NoReturn:
        token = self.token
        if token.kind == "end":
            self.fail("unexpected end of expression")
        self.fail(f"unexpected {token.text!r}")

    def expect(self, text: str) -> _Token:
        if self.token.text != text or self.token.kind == "end":
            if self.token.kind == "end":
                self.fail(f"expected {text!r}, found end of expression")
            self.fail(f"expected {text!r}, found {self.token.text!r}")
        return self.advance()

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            self.fail(f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels")

    def parse(self) -> ast.expr:
        tree = self.ternary()
        if self.token.kind != "end":
            self.unexpected()
        return tree

    def ternary(self) -> ast.expr:
        self.nested()
        test = self.binary(0)
        if self.token.text == "?":
            mark = self.advance()
            body = self.ternary()
            self.expect(":")
            orelse = self.ternary()
            test = ast.IfExp(test=test, body=body, orelse=orelse, col_offset=mark.pos)
        self.depth -= 1
        return test

    def binary(self, min_precedence: int) -> ast.expr:
        left = self.unary()
        while True:
            token = self.token
            op = token.text if token.kind in {"op", "name"} else ""
            if op not in _BINARY:
                return left
            precedence, right_assoc = _BINARY[op]
            if precedence < min_precedence:
                return left
            self.advance()
            self.nested()
            right = self.binary(precedence if right_assoc else precedence + 1)
            self.depth -= 1
            left = self.combine(op, left, right, token.pos)

    @staticmethod
    def combine(op: str, left: ast.expr, right: ast.expr, pos: int) -> ast.expr:
        if op in {"||", "or"}:
            return ast.BoolOp(op=ast.Or(), values=[left, right], col_offset=pos)
        if op in {"&&", "and"}:
            return ast.BoolOp(op=ast.And(), values=[left, right], col_offset=pos)
        if op in _COMPARE:
            return ast.Compare(
                left=left, ops=[_COMPARE[op]()], comparators=[right], col_offset=pos
            )
        return ast.BinOp(left=left, op=_ARITH[op](), right=right, col_offset=pos)

    def unary(self) -> ast.expr:
        token = self.token
        if token.text in {"!", "not", "-", "+"} and token.kind in {"op", "name"}:
            self.advance()
            self.nested()
            if token.text in {"!", "not"}:
                operand = self.binary(_NOT_PRECEDENCE)
                node: ast.expr = ast.UnaryOp(
                    op=ast.Not(), operand=operand, col_offset=token.pos
                )
            else:
                operand = self.binary(_SIGN_PRECEDENCE)
                sign = ast.USub() if token.text == "-" else ast.UAdd()
                node = ast.UnaryOp(op=sign, operand=operand, col_offset=token.pos)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> ast.expr:  # noqa: RET503 - unexpected() never returns
        token = self.token
        if token.kind == "number":
            self.advance()
            try:
                value = float(token.text.replace("_", ""))
            except ValueError:
                self.fail(f"invalid number {token.text!r}", token)
            return ast.Constant(value=value, col_offset=token.pos)
        if token.text == "(":
            self.advance()
            inner = self.ternary()
            self.expect(")")
            return inner
        if token.kind == "name":
            return self.name()
        self.unexpected()

    def name(self) -> ast.expr:
        token = self.advance()
        word = token.text
        if word in {"true", "false"}:
            return ast.Constant(value=word == "true", col_offset=token.pos)
        if word in _WORD_OPERATORS:
            self.fail(f"unexpected {word!r}", token)
        if word in _RESERVED:
            self.fail(f"{word!r} is not allowed", token)
        if word.startswith("__"):
            self.fail(f"name {word!r} is not allowed (no dunder names)", token)
        if self.token.text == "(":
            return self.call(token)
        self.names.add(word)
        return ast.Name(id=word, ctx=ast.Load(), col_offset=token.pos)

    def call(self, token: _Token) -> ast.expr:
        if token.text not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            self.fail(
                f"unknown function {token.text!r} (allowed: {allowed})",
                token,
            )
        self.expect("(")
        self.nested()
        args: list[ast.expr] = []
        starts: list[int] = []
        if self.token.text != ")":
            starts.append(self.token.pos)
            args.append(self.ternary())
            while self.token.text == ",":
                self.advance()
                starts.append(self.token.pos)
                args.append(self.ternary())
        self.expect(")")
        self.depth -= 1
        call = ast.Call(
            func=ast.Name(id=token.text, ctx=ast.Load()),
            args=args,
            keywords=[],
            col_offset=token.pos,
        )
        self.arg_starts[id(call)] = starts
        return call


# --- float-only runtime ------------------------------------------------------


class _TypeMismatchError(Exception):
    """An operator got a value of the wrong type (turned into ExpressionError)."""


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "number"
    return type(value).__name__


def _num(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, float):
        msg = f"{what} needs numbers, got {_describe(value)}"
        raise _TypeMismatchError(msg)
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{what} needs a bool, got {_describe(value)}"
        raise _TypeMismatchError(msg)
    return value


def _div(a: object, b: object) -> float:
    x, y = _num(a, "'/'"), _num(b, "'/'")
    if y == 0.0:
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(a: object, b: object) -> float:
    x, y = _num(a, "'%'"), _num(b, "'%'")
    if y == 0.0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return math.nan
    return math.fmod(x, y)


def _pow(a: object, b: object) -> float:
    x, y = _num(a, "'**'"), _num(b, "'**'")
    try:
        return math.pow(x, y)
    except OverflowError:
        negative = x < 0 and y == math.floor(y) and math.fmod(y, 2.0) != 0
        return -math.inf if negative else math.inf
    except ValueError:
        # 0 ** negative is +Inf, a negative base with a fractional power NaN (Go).
        return math.inf if x == 0.0 else math.nan


def _arith(fn: Callable[[float, float], float], what: str) -> Callable[..., float]:
    def op(a: object, b: object) -> float:
        return fn(_num(a, what), _num(b, what))

    return op


def _order(fn: Callable[[float, float], bool], what: str) -> Callable[..., bool]:
    def op(a: object, b: object) -> bool:
        return fn(_num(a, what), _num(b, what))

    return op


def _equal(a: object, b: object) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        raise _TypeMismatchError(
            f"'==' cannot compare {_describe(a)} with {_describe(b)}"
        )
    return a == b


def _not_equal(a: object, b: object) -> bool:
    return not _equal(a, b)


_OPERATORS: Final[dict[type, Callable[..., object]]] = {
    ast.Add: _arith(lambda x, y: x + y, "'+'"),
    ast.Sub: _arith(lambda x, y: x - y, "'-'"),
    ast.Mult: _arith(lambda x, y: x * y, "'*'"),
    ast.Div: _div,
    ast.Mod: _mod,
    ast.Pow: _pow,
    ast.USub: lambda a: -_num(a, "unary '-'"),
    ast.UAdd: lambda a: +_num(a, "unary '+'"),
    ast.Not: lambda a: not _bool(a, "'!'"),
    ast.Eq: _equal,
    ast.NotEq: _not_equal,
    ast.Lt: _order(lambda x, y: x < y, "'<'"),
    ast.Gt: _order(lambda x, y: x > y, "'>'"),
    ast.LtE: _order(lambda x, y: x <= y, "'<='"),
    ast.GtE: _order(lambda x, y: x >= y, "'>='"),
}


def round_half_away_from_zero(value: float) -> float:
    """Round to the nearest integer, halves away from zero (Go's ``math.Round``).

    Non-finite values are returned unchanged.
    """
    if not math.isfinite(value):
        return value
    # Not floor(|v| + 0.5): that addition rounds, so 0.49999999999999994 and odd
    # integers above 2**52 would come out one too high. v - trunc(v) is exact.
    whole = float(math.trunc(value))
    if abs(value - whole) >= 0.5:
        whole += math.copysign(1.0, value)
    return math.copysign(whole, value)


def _finite_int(fn: Callable[[float], int]) -> Callable[[float], float]:
    def apply(value: float) -> float:
        return value if not math.isfinite(value) else float(fn(value))

    return apply


def _unary_function(name: str, fn: Callable[[float], float]) -> Callable[..., float]:
    def call(*args: object) -> float:
        if len(args) != 1:
            msg = f"{name}() takes exactly 1 argument, got {len(args)}"
            raise _TypeMismatchError(msg)
        return fn(_num(args[0], f"{name}()"))

    return call


def _variadic(name: str, fn: Callable[[list[float]], float]) -> Callable[..., float]:
    def call(*args: object) -> float:
        if not args:
            msg = f"{name}() needs at least 1 argument"
            raise _TypeMismatchError(msg)
        return fn([_num(a, f"{name}()") for a in args])

    return call


def _nan_or(fn: Callable[[list[float]], float], values: list[float]) -> float:
    """Apply min or max, but NaN if any value is NaN (as Go's math.Min/Max)."""
    return math.nan if any(math.isnan(v) for v in values) else fn(values)


#: The functions an expression may call, by name.
FUNCTIONS: Final[dict[str, Callable[..., float]]] = {
    "abs": _unary_function("abs", abs),
    "ceil": _unary_function("ceil", _finite_int(math.ceil)),
    "floor": _unary_function("floor", _finite_int(math.floor)),
    "round": _unary_function("round", round_half_away_from_zero),
    "int": _unary_function("int", _finite_int(math.trunc)),
    "float": _unary_function("float", float),
    "min": _variadic("min", lambda xs: _nan_or(min, xs)),
    "max": _variadic("max", lambda xs: _nan_or(max, xs)),
}


#: How many arguments each function takes: (least, most); ``None``: no limit.
#: Every argument is a number.
ARITY: Final[dict[str, tuple[int, int | None]]] = {
    "abs": (1, 1),
    "ceil": (1, 1),
    "floor": (1, 1),
    "round": (1, 1),
    "int": (1, 1),
    "float": (1, 1),
    "min": (1, None),
    "max": (1, None),
}


# --- static types -------------------------------------------------------------

# Every value is a number or a bool, and every operator takes one of them, so
# the type of each part is known before anything runs; only a ternary whose
# branches differ ("x > 1 ? 1 : true") has a type known at run time alone.
_NUMBER: Final = "number"
_BOOL: Final = "bool"
_EITHER: Final = "either"

_SYMBOLS: Final[dict[type, str]] = {
    ast.Add: "'+'",
    ast.Sub: "'-'",
    ast.Mult: "'*'",
    ast.Div: "'/'",
    ast.Mod: "'%'",
    ast.Pow: "'**'",
    ast.Eq: "'=='",
    ast.NotEq: "'!='",
    ast.Lt: "'<'",
    ast.Gt: "'>'",
    ast.LtE: "'<='",
    ast.GtE: "'>='",
    ast.And: "'&&'",
    ast.Or: "'||'",
}


@frozen
class _TypeChecker:
    """Finds, before evaluation, every operator or call given the wrong type."""

    source: str
    arg_starts: Mapping[int, list[int]]

    def fail(self, message: str, position: int) -> NoReturn:
        _fail(message, self.source, position)

    def expect(self, node: ast.expr, wanted: str, what: str, position: int) -> None:
        found = self.type_of(node)
        if found not in {wanted, _EITHER}:
            need = "numbers" if wanted == _NUMBER else "a bool"
            self.fail(f"{what} needs {need}, got {found}", position)

    def type_of(self, node: ast.expr) -> str:  # noqa: C901, PLR0911, RET503 - a case a node; fail() never returns
        where = node.col_offset
        if isinstance(node, ast.Constant):
            return _BOOL if isinstance(node.value, bool) else _NUMBER
        if isinstance(node, ast.Name):
            return _NUMBER
        if isinstance(node, ast.BinOp):
            what = _SYMBOLS[type(node.op)]
            self.expect(node.left, _NUMBER, what, where)
            self.expect(node.right, _NUMBER, what, where)
            return _NUMBER
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self.expect(node.operand, _BOOL, "'!'", where)
                return _BOOL
            sign = "'-'" if isinstance(node.op, ast.USub) else "'+'"
            self.expect(node.operand, _NUMBER, f"unary {sign}", where)
            return _NUMBER
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.expect(value, _BOOL, _SYMBOLS[type(node.op)], where)
            return _BOOL
        if isinstance(node, ast.IfExp):
            self.expect(node.test, _BOOL, "the condition of '? :'", where)
            body, orelse = self.type_of(node.body), self.type_of(node.orelse)
            return body if body == orelse else _EITHER
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail("unsupported expression", where)  # pragma: no cover

    def compare(self, node: ast.Compare) -> str:
        op, what = node.ops[0], _SYMBOLS[type(node.ops[0])]
        (right,) = node.comparators
        if isinstance(op, ast.Eq | ast.NotEq):
            left_type, right_type = self.type_of(node.left), self.type_of(right)
            if _EITHER not in {left_type, right_type} and left_type != right_type:
                self.fail(
                    f"{what} cannot compare {left_type} with {right_type}",
                    node.col_offset,
                )
        else:
            self.expect(node.left, _NUMBER, what, node.col_offset)
            self.expect(right, _NUMBER, what, node.col_offset)
        return _BOOL

    def call(self, node: ast.Call) -> str:
        assert isinstance(node.func, ast.Name)  # noqa: S101 - the parser's shape
        name = node.func.id
        least, most = ARITY[name]
        count = len(node.args)
        if most is None and count < least:
            self.fail(
                f"{name}() takes at least {least} argument{_plural(least)}, "
                f"got {count}",
                node.col_offset,
            )
        if most is not None and not least <= count <= most:
            self.fail(
                f"{name}() takes exactly {least} argument{_plural(least)}, got {count}",
                node.col_offset,
            )
        starts = self.arg_starts.get(id(node), [node.col_offset] * count)
        for number, (arg, start) in enumerate(zip(node.args, starts, strict=True), 1):
            found = self.type_of(arg)
            if found == _BOOL:
                self.fail(
                    f"{name}() argument {number} must be a number, got bool", start
                )
        return _NUMBER


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


class _Evaluator(simpleeval.SimpleEval):  # type: ignore[misc]
    """simpleeval with Expr-lang's typed boolean operators."""

    def _eval_boolop(self, node: ast.BoolOp) -> bool:
        what = "'&&'" if isinstance(node.op, ast.And) else "'||'"
        for value in node.values:
            result = _bool(self._eval(value), what)
            if isinstance(node.op, ast.And) and not result:
                return False
            if isinstance(node.op, ast.Or) and result:
                return True
        return isinstance(node.op, ast.And)

    def _eval_ifexp(self, node: ast.IfExp) -> object:
        test = _bool(self._eval(node.test), "the condition of '? :'")
        return self._eval(node.body) if test else self._eval(node.orelse)


_local = threading.local()


def _evaluator() -> _Evaluator:
    """Return this thread's evaluator (built once: passes evaluate often)."""
    evaluator: _Evaluator | None = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _Evaluator(operators=_OPERATORS, functions=FUNCTIONS, names={})
        _local.evaluator = evaluator
    return evaluator


@frozen
class Expression:
    """A compiled count expression. Build it with :func:`compile_expression`.

    Attributes:
        source: The expression as written.
        names: The metric names it refers to.
    """

    source: str
    names: frozenset[str]
    _tree: ast.expr = field(repr=False, eq=False, alias="tree")

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Evaluate over metric *values* and return the number.

        Raises:
            ExpressionError: A name has no value (the message lists the known
                ones), an operator got the wrong type, or the result is not a
                number.
        """
        missing = sorted(self.names.difference(values))
        if missing:
            known = ", ".join(sorted(values)) or "none"
            _fail(f"unknown name {missing[0]!r} (known metrics: {known})", self.source)
        evaluator = _evaluator()
        evaluator.names = {name: float(values[name]) for name in self.names}
        try:
            result = evaluator.eval(self.source, previously_parsed=self._tree)
        except _TypeMismatchError as exc:
            _fail(str(exc), self.source)
        except simpleeval.InvalidExpression as exc:  # pragma: no cover - defensive
            _fail(f"cannot evaluate: {exc}", self.source)
        if isinstance(result, bool) or not isinstance(result, float):
            _fail(
                f"expression must produce a number, got {_describe(result)}",
                self.source,
            )
        return result

    def evaluate_int(self, values: Mapping[str, float]) -> int:
        """Evaluate and return a Machine count.

        The result is rounded half away from zero (2.5 -> 3) and negative
        results become 0.

        Raises:
            ExprNaNError: The result is NaN.
            ExprInfError: The result is +Inf or -Inf.
            ExpressionError: See :meth:`evaluate`.
        """
        value = round_half_away_from_zero(self.evaluate(values))
        if math.isnan(value):
            raise ExprNaNError(expression=self.source)
        if math.isinf(value):
            raise ExprInfError(expression=self.source)
        return max(0, int(value))

    def check_names(self, known: Iterable[str]) -> None:
        """Raise :class:`ExpressionError` if a name is not in *known*."""
        known_set = set(known)
        unknown = sorted(self.names - known_set)
        if unknown:
            listed = ", ".join(sorted(known_set)) or "none"
            _fail(f"unknown name {unknown[0]!r} (known metrics: {listed})", self.source)


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> Expression:
    parser = _Parser(source)
    tree = parser.parse()
    if _depth(tree) > MAX_EXPRESSION_DEPTH:
        _fail(
            f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels "
            "(split long chains of operators)",
            source,
        )
    # Wrong argument counts and types fail here, once, not on every evaluation.
    if _TypeChecker(source, parser.arg_starts).type_of(tree) == _BOOL:
        _fail("expression must produce a number, got bool", source)
    return Expression(source, frozenset(parser.names), tree=tree)


def _depth(tree: ast.AST) -> int:
    """Return the depth of *tree*, without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_expression(
    source: str, known_names: Iterable[str] | None = None
) -> Expression:
    """Compile a count expression (cached: each distinct text is parsed once).

    Args:
        source: The expression, in the upstream (Expr-lang) syntax.
        known_names: When given, every name the expression uses must be one of
            these (the configured metric names).

    Returns:
        The compiled expression.

    Raises:
        ExprRequiredError: *source* is empty or blank.
        ExpressionError: Syntax error, disallowed construct, too long or too
            deeply nested, or a name outside *known_names*.
    """
    if not isinstance(source, str):
        raise ExpressionError(
            f"expression must be a string, got {type(source).__name__}"
        )
    if not source.strip():
        raise ExprRequiredError(expression=source)
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; "
            f"at most {MAX_EXPRESSION_LENGTH} are allowed",
            expression=source[:80],
        )
    expression = _compile(source)
    if known_names is not None:
        expression.check_names(known_names)
    return expression
