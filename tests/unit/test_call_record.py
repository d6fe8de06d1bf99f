"""The request's log record: every column of the logs table, filled from the request."""

from __future__ import annotations

from crossroads.headers import NO_OPTIONS, parse_options
from crossroads.server.call import new_record
from crossroads.store.schema import logs


def test_a_record_has_every_column_and_only_those() -> None:
    # the SQLite writer reads a record by subscript, column by column: a missing key sends
    # every record down the slower lenient path, an extra one is never stored
    rec = new_record(NO_OPTIONS, {}, "log-1", "acct", "gw", "/compat/chat/completions",
                     b"{}", 1024)
    assert set(rec) == {c.name for c in logs.columns}


def test_a_record_is_keyed_by_the_column_names_the_writer_reads_it_by() -> None:
    # plain str keys, the very objects the SQLite writer's columns are: SQLAlchemy's names are
    # a str subclass, and one such key makes CPython look up every key of the dict the slow way
    from crossroads.store.sql import _LOG_COLUMNS

    rec = new_record(NO_OPTIONS, {}, "log-1", "acct", "gw", "/p", b"{}", 1024)
    assert all(type(k) is str for k in rec)
    assert all(type(c) is str for c in _LOG_COLUMNS)
    keys = {k: k for k in rec}
    assert all(keys[c] is c for c in _LOG_COLUMNS)


def test_a_plain_request_and_one_with_options() -> None:
    plain = new_record(NO_OPTIONS, {"content-type": "application/json"}, "log-1", "acct", "gw",
                       "/p", b"x" * 10, 4)
    assert (plain["id"], plain["account_id"], plain["gateway_id"], plain["path"]) == (
        "log-1", "acct", "gw", "/p")
    assert plain["request_size"] == 10 and plain["request_body"] == b"xxxx"
    assert plain["request_head_complete"] is False
    assert plain["request_content_type"] == "application/json"
    assert plain["metadata"] is None and plain["event_id"] is None
    assert plain["custom_cost"] is False
    options = parse_options({"cf-aig-metadata": '{"user":"u1","tier":"pro"}',
                             "cf-aig-event-id": "ev-9",
                             "cf-aig-custom-cost": '{"per_token_in":0.1,"per_token_out":0.2}'})
    rec = new_record(options, {}, "log-2", "acct", "gw", "/p", b"", 0)
    assert rec["metadata"] == '{"user":"u1","tier":"pro"}' and rec["event_id"] == "ev-9"
    assert rec["custom_cost"] is True
    assert rec["request_body"] is None and rec["request_head_complete"] is True
    # the template is copied, never shared
    rec["provider"] = "openai"
    assert new_record(NO_OPTIONS, {}, "log-3", "a", "g", "/", b"", 0)["provider"] == ""
