"""The FHIR `_filter` grammar (subset used by the ROR IG): and / or / not, parentheses, comparisons
`path op value` with eq ne gt lt ge le sa eb ap co sw ew pr, chained paths (`organization.type`), quoted values.
Keywords are case-insensitive (the IG writes `OR`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from ror.errors import InvalidRequest
from ror.search.query import BoolNode, Node

OPS = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "co", "sw", "ew", "pr"}
_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|"(?P<q>(?:[^"\\]|\\.)*)"|(?P<w>[^\s()"]+))')

MakeNode = Callable[[str, str, str], Node]


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidRequest(f"_filter: cannot read {text[pos : pos + 20]!r}", expression="_filter")
        pos = m.end()
        if m.group("lp"):
            out.append(("(", "("))
        elif m.group("rp"):
            out.append((")", ")"))
        elif m.group("q") is not None:
            out.append(("str", m.group("q").replace('\\"', '"')))
        elif m.group("w"):
            out.append(("word", m.group("w")))
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], make: MakeNode) -> None:
        self.t = tokens
        self.i = 0
        self.make = make

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise InvalidRequest("_filter: unexpected end of expression", expression="_filter")
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def parse_or(self) -> Node:
        nodes = [self.parse_and()]
        while self.is_word("or"):
            self.take()
            nodes.append(self.parse_and())
        return nodes[0] if len(nodes) == 1 else BoolNode("or", nodes)

    def parse_and(self) -> Node:
        nodes = [self.parse_unary()]
        while self.is_word("and"):
            self.take()
            nodes.append(self.parse_unary())
        return nodes[0] if len(nodes) == 1 else BoolNode("and", nodes)

    def parse_unary(self) -> Node:
        if self.is_word("not"):
            self.take()
            return BoolNode("not", [self.parse_unary()])
        tok = self.peek()
        if tok is not None and tok[0] == "(":
            self.take()
            node = self.parse_or()
            if self.take()[0] != ")":
                raise InvalidRequest("_filter: missing closing parenthesis", expression="_filter")
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        kind, path = self.take()
        if kind != "word":
            raise InvalidRequest(f"_filter: expected a parameter name, got {path!r}", expression="_filter")
        kind, op = self.take()
        if kind != "word" or op.lower() not in OPS:
            raise InvalidRequest(f"_filter: unknown operator {op!r} after {path}", expression="_filter")
        kind, value = self.take()
        if kind not in ("word", "str"):
            raise InvalidRequest(f"_filter: expected a value after {path} {op}", expression="_filter")
        return self.make(path, op.lower(), value)


def parse_filter(text: str, make: MakeNode) -> Node:
    tokens = _tokenize(text)
    if not tokens:
        raise InvalidRequest("_filter is empty", expression="_filter")
    p = _Parser(tokens, make)
    node = p.parse_or()
    if p.peek() is not None:
        raise InvalidRequest(f"_filter: unexpected {p.peek()[1]!r}", expression="_filter")  # type: ignore[index]
    return node
