"""The text between simdiff and a legacy program: placeholders, number formats, expressions.

A template (a file of ``files=``, or one argument of ``command=``) is plain text in which a
placeholder ``{...}`` is filled for every run. A brace group is a placeholder when its content
(before an optional ``:spec``) is an expression that names at least one input or constant;
every other brace group (JSON, Fortran namelists, C initialisers, ``{unknown}`` names) is
written as it stands. Braces do not nest and there is no escape: ``{{a}}`` is written as ``{``
+ a's value + ``}``.

Placeholders
    ``{E}``            the input E in the default number format (below);
    ``{E:.6e}``        any Python format spec: ``{n:d}``, ``{E:12.5E}``, ``{t:>20.12g}``;
                       an integer spec (``b c d o x X``) writes the value rounded to an int;
    ``{E:r}``          ``repr(float)``: the shortest text that round-trips float64 (up to 24
                       characters);
    ``{L/2}``, ``{r0 + d0:.8f}``, ``{sqrt(k)}``, ``{2*pi*r}``
                       an expression: numbers, inputs, constants (``constants=``), ``pi``,
                       ``e``, the operators ``+ - * / // % **``, parentheses and the functions
                       ``FUNCTIONS``. An expression that names an input or constant but uses
                       anything else (attribute access, other calls, subscripts, unknown names)
                       is refused at configuration time, naming the template and the
                       expression.

Default number format (``format_number``)
    ``repr(float(v))`` when it fits in 20 characters (the field width of Abaqus-style decks
    and of many fixed-format Fortran readers such as ``(f20.0)``); else the same with the
    exponent compacted (``9.900000000000001e-5``: no '+', no leading zeros); else
    ``'%.{p}g' % v``, compacted, with the largest p (at most 16) whose text fits: at least 13
    significant digits (the widest case, ``-1.234567890123e-300``). Every float64 that needs
    at most 20 characters round-trips exactly; the others are written to better than 5e-13
    relative, and ``quantize`` accounts for that.

What the program reads (``written``)
    The float the program reads back from a placeholder's text, ``float(text)``. The
    ``subprocess`` adapter's ``quantize`` maps x to these values, so a derivative is taken at
    the points the program actually read (see ``simdiff.simulator.Simulator.quantize``).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from simdiff.errors import ConfigError

__all__ = ["FIELD_WIDTH", "FUNCTIONS", "Template", "format_number", "format_value"]

FIELD_WIDTH = 20

#: The functions an expression may call (one or two positional arguments).
FUNCTIONS: dict[str, Any] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "log10": math.log10,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "abs": abs, "min": min, "max": max, "floor": math.floor,
    "ceil": math.ceil, "round": round, "hypot": math.hypot,
}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e}

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY = (ast.UAdd, ast.USub)
_INT_TYPES = set("bcdoxX")
_BRACES = re.compile(r"\{([^{}\n]*)\}")


def format_number(v: float, width: int = FIELD_WIDTH) -> str:
    """``v`` in at most ``width`` characters: ``repr`` if it fits, else the most digits of
    ``%g`` that fit (see the module docstring)."""
    v = float(v)
    s = repr(v)
    if len(s) <= width:
        return s
    s = _compact(s)
    if len(s) <= width:
        return s
    for p in range(16, 0, -1):
        s = _compact(f"{v:.{p}g}")
        if len(s) <= width:
            return s
    return s  # pragma: no cover - width < 8


_EXPONENT = re.compile(r"e([+-])0*(\d)")


def _compact(s: str) -> str:
    """The exponent without '+' and leading zeros: 1e+16 -> 1e16, 9.9e-05 -> 9.9e-5."""
    return _EXPONENT.sub(lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), s)


def format_value(v: float, spec: str | None) -> str:
    """One value as a placeholder writes it: the default format, ``repr`` (spec ``r``), an
    integer spec (the value rounded), or any Python float format spec."""
    if spec is None or spec == "":
        return format_number(v)
    if spec == "r":
        return repr(float(v))
    if spec[-1] in _INT_TYPES:
        return format(int(round(float(v))), spec)
    return format(float(v), spec)


def written(v: float, spec: str | None) -> float:
    """The float a program reads from ``format_value(v, spec)``."""
    text = format_value(v, spec).strip().replace(",", "").replace("_", "")
    if spec and spec[-1] in "xXob":
        return float(int(round(float(v))))
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    return float(text)


@dataclass(frozen=True)
class Placeholder:
    """One ``{expr:spec}`` of a template."""

    text: str  # as written in the template, braces included
    expr: str
    spec: str | None
    names: tuple  # inputs and constants it reads
    bare: str | None  # the input's name when the expression is that name alone


class Template:
    """A template compiled once: literal text and placeholders.

    Parameters
    ----------
    text : the template.
    where : how error messages name it (``files['deck.inp']``, ``command[2]``).
    inputs, constants : the names a placeholder may use.
    """

    def __init__(self, text: str, where: str, inputs: list[str], constants: Mapping[str, float]):
        self.text = text
        self.where = where
        self.parts: list = []  # str (literal) or Placeholder
        known = set(inputs) | set(constants)
        pos = 0
        for m in _BRACES.finditer(text):
            ph = _placeholder(m.group(0), m.group(1), known, set(inputs), where)
            if ph is None:
                continue
            if m.start() > pos:
                self.parts.append(text[pos:m.start()])
            self.parts.append(ph)
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])
        self._code: dict[str, Any] = {}

    @property
    def placeholders(self) -> list[Placeholder]:
        return [p for p in self.parts if isinstance(p, Placeholder)]

    def fill(self, values: Mapping[str, float]) -> str:
        """The text with every placeholder replaced; ``values`` maps inputs and constants."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v = values[p.bare] if p.bare is not None else self._eval(p, values)
            try:
                out.append(format_value(v, p.spec))
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"{self.where}: placeholder {p.text} cannot write {v!r}: {exc}") from None
        return "".join(out)

    def _eval(self, p: Placeholder, values: Mapping[str, float]) -> float:
        code = self._code.get(p.expr)
        if code is None:
            code = self._code[p.expr] = compile(p.expr, f"<{self.where} {p.text}>", "eval")
        scope = {**FUNCTIONS, **MATH_CONSTANTS, **{n: float(values[n]) for n in p.names}}
        try:
            return eval(code, {"__builtins__": {}}, scope)  # noqa: S307 - checked by _check
        except (ArithmeticError, ValueError) as exc:
            raise ValueError(f"{self.where}: placeholder {p.text} failed: {type(exc).__name__}: {exc}") from None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_code"] = {}  # code objects are rebuilt where the template is used
        return state

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _placeholder(whole: str, content: str, known: set, inputs: set, where: str) -> Placeholder | None:
    """The placeholder a brace group holds, None for text written as it stands."""
    expr, sep, spec = content.partition(":")
    if sep and (not spec or spec[0].isspace()):  # "{a: 1}" is a mapping, not a format
        return None
    source = expr.strip()
    if not source:
        return None
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return None
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used = names & known
    if not used:
        return None  # JSON, namelists, unknown names: not ours
    _check(tree.body, known, whole, where)
    spec_ = spec if sep else None
    if spec_ is not None:
        if spec_.endswith("c"):
            raise ConfigError(f"{where}: placeholder {whole}: the format type 'c' writes a "
                              "character, not a number; allowed: a numeric format spec")
        try:
            format_value(1.5, spec_)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{where}: placeholder {whole} has format spec {spec_!r} that cannot write a "
                f"number ({exc}); allowed: a Python format spec such as '.6e', '12.5E', 'd', "
                "or 'r' (repr)"
            ) from None
    bare = source if isinstance(tree.body, ast.Name) and source in inputs else None
    return Placeholder(whole, source, spec_, tuple(sorted(used)), bare)


def _check(node: ast.AST, known: set, whole: str, where: str) -> None:
    """Refuse everything but arithmetic on numbers, names and the allowed functions."""

    def bad(what: str) -> ConfigError:
        return ConfigError(
            f"{where}: placeholder {whole}: {what} is not allowed in a template expression; "
            "allowed: numbers, inputs, constants, pi, e, + - * / // % **, parentheses and the "
            f"functions {', '.join(sorted(FUNCTIONS))}"
        )

    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _BINOPS):
            raise bad(f"the operator {type(node.op).__name__}")
        _check(node.left, known, whole, where)
        _check(node.right, known, whole, where)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, _UNARY):
            raise bad(f"the operator {type(node.op).__name__}")
        _check(node.operand, known, whole, where)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad(f"the constant {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in known and node.id not in MATH_CONSTANTS:
            raise bad(f"the unknown name {node.id!r} (not an input or constant)")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise bad(f"calling {ast.unparse(node.func)}")
        if node.keywords or not 1 <= len(node.args) <= 2:
            raise bad(f"the call {ast.unparse(node)} (one or two positional arguments)")
        for a in node.args:
            _check(a, known, whole, where)
    else:
        raise bad(f"{type(node).__name__} ({ast.unparse(node)!r})")
