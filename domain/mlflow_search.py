"""MLflow's registry search grammar, parsed: the `filter` of registered-models/search and
model-versions/search into clauses, and their `order_by` into sort keys. Pure: no SQL, no I/O.

The grammar is the one the MLflow client and server accept (mlflow/utils/search_utils.py,
SearchModelUtils / SearchModelVersionUtils): clauses joined by AND only; a clause is an identifier
(`name`, `attribute.name`, `tag.key`, `tags.key`, keys optionally in backticks or double quotes),
a comparator, and a value (a quoted string, an integer, or a parenthesised list of strings).
Anything else is refused with a message that says what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Value = str | int | tuple[str, ...]

STRING_COMPARATORS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
NUMERIC_COMPARATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
TAG_COMPARATORS = frozenset({"=", "!=", "LIKE", "ILIKE"})
LIST_COMPARATORS = frozenset({"IN", "NOT IN"})

PROMPT_TAG = "mlflow.prompt.is_prompt"
"""The tag MLflow marks prompts with. The client adds ``tag.`mlflow.prompt.is_prompt` != 'true'``
to every model search; an entity without the tag is not a prompt, so it must match."""


class BadSearch(ValueError):
    """A filter or order_by MLflow's grammar does not accept (INVALID_PARAMETER_VALUE)."""


@dataclass(frozen=True, slots=True)
class Clause:
    kind: Literal["attribute", "tag"]
    key: str
    comparator: str
    value: Value

    def matches_missing_tag(self) -> bool:
        """Whether an entity without this clause's tag satisfies it (MLflow: never, except for the
        prompt tag, which a missing tag means 'false')."""
        if self.kind != "tag" or self.key != PROMPT_TAG:
            return False
        return (self.comparator, self.value) in (("=", "false"), ("!=", "true"))


@dataclass(frozen=True, slots=True)
class SortKey:
    key: str
    ascending: bool


@dataclass(frozen=True, slots=True)
class SearchGrammar:
    """What one search endpoint accepts."""

    entity: str
    string_attributes: frozenset[str]
    numeric_attributes: frozenset[str]
    list_attributes: frozenset[str]
    order_keys: frozenset[str]


MODEL_SEARCH = SearchGrammar(
    entity="registered models",
    string_attributes=frozenset({"name"}),
    numeric_attributes=frozenset(),
    list_attributes=frozenset({"name"}),
    order_keys=frozenset({"name", "timestamp", "last_updated_timestamp", "creation_timestamp"}),
)
VERSION_SEARCH = SearchGrammar(
    entity="model versions",
    string_attributes=frozenset({"name", "run_id", "source_path"}),
    numeric_attributes=frozenset({"version_number"}),
    list_attributes=frozenset({"name", "run_id"}),
    order_keys=frozenset(
        {"name", "version_number", "creation_timestamp", "last_updated_timestamp"}
    ),
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>'(?:[^']|'')*')
    | (?P<dquoted>"(?:[^"]|"")*")
    | (?P<backticked>`[^`]*`)
    | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),.])
    | (?P<word>[A-Za-z_][\w]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    at: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None:
            raise BadSearch(f"unexpected character {text[at]!r} at position {at} of {text!r}")
        kind = found.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, found.group(), at))
        at = found.end()
    return tokens


def _unquote(token: _Token) -> str:
    quote = token.text[0]
    inner = token.text[1:-1]
    return inner if quote == "`" else inner.replace(quote * 2, quote)


class _Parser:
    def __init__(self, text: str, grammar: SearchGrammar) -> None:
        self.text = text
        self.grammar = grammar
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, what: str) -> _Token:
        token = self.peek()
        if token is None:
            raise BadSearch(f"filter {self.text!r} ends where {what} was expected")
        self.at += 1
        return token

    def clauses(self) -> list[Clause]:
        clauses = [self.clause()]
        while (token := self.peek()) is not None:
            if not token.is_word("AND"):
                hint = " (only AND joins clauses)" if token.is_word("OR") else ""
                raise BadSearch(
                    f"expected AND at position {token.at} of {self.text!r}, got {token.text!r}"
                    + hint
                )
            self.at += 1
            clauses.append(self.clause())
        return clauses

    def clause(self) -> Clause:
        kind, key = self.identifier()
        comparator = self.comparator()
        value = self.value()
        return self.checked(Clause(kind, key, comparator, value))

    def identifier(self) -> tuple[Literal["attribute", "tag"], str]:
        first = self.take("an identifier such as name or tag.<key>")
        if first.kind in ("dquoted", "backticked"):
            head = _unquote(first)
        elif first.kind == "word":
            head = first.text
        else:
            raise BadSearch(
                f"expected an identifier at position {first.at} of {self.text!r},"
                f" got {first.text!r}"
            )
        dot = self.peek()
        if dot is None or dot.text != ".":
            return "attribute", head
        self.at += 1
        if head in ("tag", "tags"):
            return "tag", self.key()
        if head == "attribute":
            return "attribute", self.key()
        raise BadSearch(
            f"invalid entity type {head!r} in {self.text!r}: use attribute, tag or tags"
        )

    def key(self) -> str:
        token = self.take("a key")
        if token.kind in ("dquoted", "backticked", "string"):
            return _unquote(token)
        if token.kind not in ("word", "number"):
            raise BadSearch(f"expected a key at position {token.at} of {self.text!r}")
        # A bare key may contain dots (tag.a.b is the tag "a.b"), as in MLflow.
        parts = [token.text]
        while (dot := self.peek()) is not None and dot.text == "." and self._word_follows():
            self.at += 1
            parts.append(self.take("a key").text)
        return ".".join(parts)

    def _word_follows(self) -> bool:
        following = self.tokens[self.at + 1] if self.at + 1 < len(self.tokens) else None
        return following is not None and following.kind in ("word", "number")

    def comparator(self) -> str:
        token = self.take("a comparator")
        if token.kind == "op":
            return token.text
        if token.is_word("LIKE", "ILIKE", "IN"):
            return token.text.upper()
        if token.is_word("NOT"):
            following = self.take("IN")
            if following.is_word("IN"):
                return "NOT IN"
        raise BadSearch(
            f"expected a comparator at position {token.at} of {self.text!r}, got {token.text!r}"
        )

    def value(self) -> Value:
        token = self.take("a value")
        if token.kind in ("string", "dquoted"):
            return _unquote(token)
        if token.kind == "number":
            if "." in token.text:
                raise BadSearch(f"expected an integer, got {token.text} in {self.text!r}")
            return int(token.text)
        if token.text == "(":
            return self.string_list()
        raise BadSearch(
            f"expected a quoted value at position {token.at} of {self.text!r},"
            f" got {token.text!r} (quote strings: 'my-value')"
        )

    def string_list(self) -> tuple[str, ...]:
        values: list[str] = []
        while True:
            token = self.take("a quoted string or )")
            if token.text == ")" and not values:
                break
            if token.kind not in ("string", "dquoted"):
                raise BadSearch(
                    f"a list holds quoted strings only, got {token.text!r} in {self.text!r}"
                )
            values.append(_unquote(token))
            separator = self.take(", or )")
            if separator.text == ")":
                break
            if separator.text != ",":
                raise BadSearch(f"expected , or ) in a list, got {separator.text!r}")
        if not values:
            raise BadSearch(f"a list must hold at least one quoted string, in {self.text!r}")
        return tuple(values)

    def checked(self, clause: Clause) -> Clause:
        grammar, key, comparator, value = self.grammar, clause.key, clause.comparator, clause.value
        if clause.kind == "tag":
            if comparator not in TAG_COMPARATORS:
                raise BadSearch(
                    f"invalid comparator {comparator!r} for tag {key!r}:"
                    f" use one of {', '.join(sorted(TAG_COMPARATORS))}"
                )
            if not isinstance(value, str):
                raise BadSearch(f"tag {key!r} compares with a quoted string, got {value!r}")
            return clause
        if key in grammar.numeric_attributes:
            if comparator not in NUMERIC_COMPARATORS:
                raise BadSearch(
                    f"invalid comparator {comparator!r} for {key}:"
                    f" use one of {', '.join(sorted(NUMERIC_COMPARATORS))}"
                )
            number = value if isinstance(value, int) else None
            if isinstance(value, str) and value.lstrip("-").isdigit():
                number = int(value)
            if number is None:
                raise BadSearch(f"{key} compares with an integer, got {value!r}")
            return Clause(clause.kind, key, comparator, number)
        if key not in grammar.string_attributes:
            valid = sorted(grammar.string_attributes | grammar.numeric_attributes)
            raise BadSearch(
                f"invalid attribute {key!r} for searching {grammar.entity}:"
                f" use one of {', '.join(valid)}, or tag.<key>"
            )
        if comparator not in STRING_COMPARATORS:
            raise BadSearch(
                f"invalid comparator {comparator!r} for {key}:"
                f" use one of {', '.join(sorted(STRING_COMPARATORS))}"
            )
        if comparator in LIST_COMPARATORS:
            if key not in grammar.list_attributes:
                raise BadSearch(f"{comparator} is not supported for {key}")
            if not isinstance(value, tuple):
                raise BadSearch(f"{comparator} takes a list such as ('a', 'b'), got {value!r}")
        elif not isinstance(value, str):
            raise BadSearch(f"{key} {comparator} takes a quoted string, got {value!r}")
        return clause


def parse_filter(text: str | None, grammar: SearchGrammar) -> list[Clause]:
    """The AND-joined clauses of `text` (none for an empty filter); BadSearch if not valid."""
    if text is None or not text.strip():
        return []
    return _Parser(text, grammar).clauses()


_ORDER = re.compile(r"^\s*(?:`([^`]+)`|([\w.]+))\s*(?:\s(ASC|DESC))?\s*$", re.IGNORECASE)


def parse_order_by(items: list[str], grammar: SearchGrammar) -> list[SortKey]:
    """`["name ASC", "last_updated_timestamp DESC"]` → sort keys; BadSearch if not valid."""
    keys: list[SortKey] = []
    for item in items:
        found = _ORDER.match(item)
        if found is None:
            raise BadSearch(f"invalid order_by clause {item!r}: use '<key> [ASC|DESC]'")
        key = (found.group(1) or found.group(2)).removeprefix("attribute.")
        if key not in grammar.order_keys:
            raise BadSearch(
                f"invalid order_by key {key!r} for {grammar.entity}:"
                f" use one of {', '.join(sorted(grammar.order_keys))}"
            )
        if any(known.key == key for known in keys):
            raise BadSearch(f"order_by names {key!r} twice")
        keys.append(SortKey(key, (found.group(3) or "ASC").upper() == "ASC"))
    return keys
