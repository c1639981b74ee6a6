"""MLflow's search grammar as the client and server accept it (mlflow/utils/search_utils.py): what
parses into which clauses, and what is refused with a message saying why. No database."""

from __future__ import annotations

import pytest

from registrar.domain.mlflow_search import (
    MODEL_SEARCH,
    VERSION_SEARCH,
    BadSearch,
    Clause,
    SortKey,
    parse_filter,
    parse_order_by,
)


def test_an_empty_filter_has_no_clauses() -> None:
    assert parse_filter(None, MODEL_SEARCH) == []
    assert parse_filter("  ", VERSION_SEARCH) == []


def test_clauses_are_joined_by_and_in_any_case() -> None:
    clauses = parse_filter("name LIKE 'churn%' and tags.team = \"growth\"", MODEL_SEARCH)
    assert clauses == [
        Clause("attribute", "name", "LIKE", "churn%"),
        Clause("tag", "team", "=", "growth"),
    ]


def test_the_clients_prompt_clause_parses_with_a_backticked_key() -> None:
    text = "name = 'a' AND tag.`mlflow.prompt.is_prompt` != 'true'"
    prompt = parse_filter(text, MODEL_SEARCH)[1]
    assert prompt == Clause("tag", "mlflow.prompt.is_prompt", "!=", "true")
    assert prompt.matches_missing_tag()


def test_only_the_prompt_tag_matches_an_entity_without_it() -> None:
    assert not Clause("tag", "team", "!=", "growth").matches_missing_tag()
    assert Clause("tag", "mlflow.prompt.is_prompt", "=", "false").matches_missing_tag()
    assert not Clause("tag", "mlflow.prompt.is_prompt", "=", "true").matches_missing_tag()


def test_bare_tag_keys_may_hold_dots_and_quoted_keys_anything() -> None:
    assert parse_filter("tag.a.b = 'x'", MODEL_SEARCH)[0].key == "a.b"
    assert parse_filter("tags.\"my key\" = 'x'", MODEL_SEARCH)[0].key == "my key"


def test_in_and_not_in_take_lists_of_strings() -> None:
    clauses = parse_filter("run_id IN ('a', 'b') AND name NOT IN ('c')", VERSION_SEARCH)
    assert clauses == [
        Clause("attribute", "run_id", "IN", ("a", "b")),
        Clause("attribute", "name", "NOT IN", ("c",)),
    ]


def test_version_number_compares_with_integers() -> None:
    clauses = parse_filter("version_number >= 2 AND version_number != '5'", VERSION_SEARCH)
    assert clauses == [
        Clause("attribute", "version_number", ">=", 2),
        Clause("attribute", "version_number", "!=", 5),
    ]


def test_quotes_inside_strings_are_doubled() -> None:
    assert parse_filter("name = 'it''s'", MODEL_SEARCH)[0].value == "it's"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name = 'a' OR name = 'b'", "only AND"),
        ("run_id = 'r'", "invalid attribute 'run_id'"),
        ("source_path IN ('a')", "IN is not supported for source_path"),
        ("name > 'a'", "invalid comparator '>'"),
        ("tag.team IN ('a')", "invalid comparator 'IN' for tag"),
        ("name = growth", "expected a quoted value"),
        ("name IN 'a'", "takes a list"),
        ("name = ('a')", "takes a quoted string"),
        ("version_number = 'x'", "compares with an integer"),
        ("version_number LIKE '1%'", "invalid comparator 'LIKE'"),
        ("version_number = 1.5", "expected an integer"),
        ("metric.auc > 0.5", "invalid entity type 'metric'"),
        ("name = 'a' AND", "ends where"),
        ("name = 'a' name = 'b'", "expected AND"),
        ("name IN ()", "at least one"),
        ("name = 'a'; DROP TABLE cs_models", "unexpected character ';'"),
        ("name IS NULL", "expected a comparator"),
    ],
)
def test_anything_else_is_refused_saying_what_is_wrong(text: str, problem: str) -> None:
    grammar = VERSION_SEARCH if "version" in text or "source" in text else MODEL_SEARCH
    with pytest.raises(BadSearch, match=problem):
        parse_filter(text, grammar)


def test_order_by_takes_a_key_and_a_direction() -> None:
    order = parse_order_by(["last_updated_timestamp DESC", "name"], MODEL_SEARCH)
    assert order == [SortKey("last_updated_timestamp", False), SortKey("name", True)]
    assert parse_order_by(["version_number asc"], VERSION_SEARCH) == [
        SortKey("version_number", True)
    ]


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (["version_number"], "invalid order_by key 'version_number' for registered models"),
        (["name sideways"], "invalid order_by clause"),
        (["name", "name DESC"], "twice"),
    ],
)
def test_a_bad_order_by_is_refused(items: list[str], problem: str) -> None:
    with pytest.raises(BadSearch, match=problem):
        parse_order_by(items, MODEL_SEARCH)
