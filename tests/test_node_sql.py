"""The ``sql`` node through the real engine and a real in-memory DuckDB."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from engine import Executor, load_definition, validate_definition
from tests.helpers import edge as _edge
from tests.helpers import node as _node


def _workflow(sql_config: dict[str, Any]) -> dict[str, Any]:
    """start (array inputs 'rows' and 'other') -> sql 'q' -> end (the sql outputs)."""
    start_inputs = [
        {"name": "rows", "type": "array", "required": False},
        {"name": "other", "type": "array", "required": False},
        {"name": "text", "type": "string", "required": False},
    ]
    outputs = {"rows": "{{q.rows}}", "columns": "{{q.columns}}", "truncated": "{{q.truncated}}"}
    return {
        "version": "1.0.0",
        "nodes": [
            _node("start", "start", {"inputs": start_inputs}),
            _node("q", "sql", sql_config),
            _node("end", "end", {"outputs": outputs}),
        ],
        "edges": [_edge("start", "q"), _edge("q", "end")],
        "settings": {
            "timeout": 30,
            "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
            "errorHandling": "stop",
        },
    }


async def _run(sql_config: dict[str, Any], **inputs: Any) -> Any:
    return await Executor().run(load_definition(_workflow(sql_config)), inputs)


async def _failure(sql_config: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    result = await _run(sql_config, **inputs)
    assert result.status == "failed"
    error = result.nodes["q"].error
    assert error is not None
    assert error["nodeId"] == "q"
    return error


SALES = [
    {"region": "north", "amount": 10, "day": "2024-01-31"},
    {"region": "south", "amount": 5, "day": "2024-02-01"},
    {"region": "north", "amount": 7.5, "day": "2024-02-03"},
]


async def test_aggregates_rows_from_an_upstream_node() -> None:
    result = await _run(
        {
            "query": "select region, sum(amount) as total, count(*) as n from sales "
            "group by region order by region",
            "tables": {"sales": "{{start.rows}}"},
        },
        rows=SALES,
    )
    assert result.status == "succeeded", result.error
    assert result.outputs == {
        "rows": [
            {"region": "north", "total": 17.5, "n": 2},
            {"region": "south", "total": 5.0, "n": 1},
        ],
        "columns": ["region", "total", "n"],
        "truncated": False,
    }


async def test_joins_two_tables_and_infers_dates() -> None:
    customers = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Linus"}, {"id": 3, "name": "Grace"}]
    orders = [
        {"customer_id": 1, "total": 20, "placed": "2024-01-31"},
        {"customer_id": 1, "total": 5, "placed": "2024-02-28"},
        {"customer_id": 2, "total": 8, "placed": "2024-03-01"},
    ]
    result = await _run(
        {
            "query": "select c.name, count(o.total) as orders, coalesce(sum(o.total), 0) as spent, "
            "max(o.placed) + 1 as day_after_last "
            "from customers c left join orders o on o.customer_id = c.id "
            "group by c.name order by spent desc, c.name",
            "tables": {"customers": "{{start.rows}}", "orders": "{{start.other}}"},
        },
        rows=customers,
        other=orders,
    )
    assert result.status == "succeeded", result.error
    # 'placed' was inferred as DATE: adding 1 moves to the next day (a leap year here).
    assert result.outputs["rows"] == [
        {"name": "Ada", "orders": 2, "spent": 25, "day_after_last": "2024-02-29"},
        {"name": "Linus", "orders": 1, "spent": 8, "day_after_last": "2024-03-02"},
        {"name": "Grace", "orders": 0, "spent": 0, "day_after_last": None},
    ]


async def test_queries_a_local_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,age,joined\nada,36,2020-05-01\nbob,17,2023-09-12\ncy,52,2019-01-02\n")
    result = await _run(
        {"query": f"select name, age, joined from read_csv('{path}') where age >= 18 order by age"}
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [
        {"name": "ada", "age": 36, "joined": "2020-05-01"},
        {"name": "cy", "age": 52, "joined": "2019-01-02"},
    ]


async def test_rows_joined_with_a_file(tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text("region,manager\nnorth,Ann\nsouth,Sam\n")
    result = await _run(
        {
            "query": f"select m.manager, sum(s.amount) as total from sales s "
            f"join read_csv('{path}') m using (region) group by m.manager order by m.manager",
            "tables": {"sales": "{{start.rows}}"},
        },
        rows=SALES,
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [
        {"manager": "Ann", "total": 17.5},
        {"manager": "Sam", "total": 5.0},
    ]


async def test_syntax_error_names_the_query_field() -> None:
    error = await _failure({"query": "selec region fro sales"})
    assert error["field"] == "query"
    assert "syntax error" in error["message"]
    assert "selec" in error["message"]


async def test_unknown_table_is_a_query_error() -> None:
    error = await _failure({"query": "select * from nowhere"})
    assert error["field"] == "query"
    assert "nowhere" in error["message"]


async def test_table_value_that_is_not_rows_at_run_time() -> None:
    error = await _failure(
        {"query": "select 1", "tables": {"items": "{{start.text}}"}}, text="not rows"
    )
    assert error["field"] == "tables.items"
    assert "list of objects" in error["message"]
    assert "a string" in error["message"]


async def test_table_with_a_row_that_is_not_an_object() -> None:
    error = await _failure(
        {"query": "select 1", "tables": {"items": "{{start.rows}}"}}, rows=[{"a": 1}, 2]
    )
    assert error["field"] == "tables.items"
    assert "row 1" in error["message"]


async def test_static_tables_and_names_are_checked_at_validation() -> None:
    doc = _workflow({"query": "select 1", "tables": {"good": [{"a": 1}], "bad": "text"}})
    issues = validate_definition(load_definition(doc))
    assert [(i.node_id, i.field) for i in issues] == [("q", "tables.bad")]

    doc = _workflow({"query": "select 1", "tables": {"my-table": []}})
    issues = validate_definition(load_definition(doc))
    assert len(issues) == 1
    assert issues[0].node_id == "q"
    assert issues[0].field == "tables"
    assert "my-table" in issues[0].message

    doc = _workflow({"query": "select 1", "tables": {"Items": [], "items": []}})
    assert [i.field for i in validate_definition(load_definition(doc))] == ["tables"]


async def test_installing_an_extension_is_refused_without_trying() -> None:
    started = time.perf_counter()
    error = await _failure({"query": "INSTALL httpfs"})
    assert error["field"] == "query"
    assert "LOAD statements are not allowed" in error["message"]
    # Refused before execution: no download was attempted (that would take far longer).
    assert time.perf_counter() - started < 5

    for query in ("FORCE INSTALL httpfs FROM core", "LOAD httpfs", "select 1; install httpfs"):
        error = await _failure({"query": query})
        assert "not allowed" in error["message"], query


async def test_configuration_is_locked() -> None:
    for query in (
        "SET autoinstall_known_extensions = true",
        "SET enable_external_access = true",
        "RESET lock_configuration",
    ):
        error = await _failure({"query": query})
        assert error["field"] == "query"
        assert "configuration has been locked" in error["message"], query


async def test_remote_urls_are_refused() -> None:
    error = await _failure({"query": "select * from read_csv('http://127.0.0.1:9/data.csv')"})
    assert error["field"] == "query"
    assert "disabled by configuration" in error["message"]


async def test_file_writes_and_attach_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    error = await _failure({"query": f"COPY (select 1) TO '{target}'"})
    assert "COPY statements are not allowed" in error["message"]
    assert not target.exists()
    error = await _failure({"query": f"ATTACH '{tmp_path / 'other.duckdb'}' AS other"})
    assert "ATTACH statements are not allowed" in error["message"]
    assert not (tmp_path / "other.duckdb").exists()


async def test_max_rows_truncates_and_says_so() -> None:
    result = await _run({"query": "select i from range(25) t(i) order by i", "maxRows": 10})
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [{"i": i} for i in range(10)]
    assert result.outputs["truncated"] is True

    exact = await _run({"query": "select i from range(10) t(i)", "maxRows": 10})
    assert len(exact.outputs["rows"]) == 10
    assert exact.outputs["truncated"] is False


async def test_default_max_rows_is_ten_thousand() -> None:
    result = await _run({"query": "select i from range(10001) t(i)"})
    assert len(result.outputs["rows"]) == 10_000
    assert result.outputs["truncated"] is True


async def test_values_are_json_friendly() -> None:
    result = await _run(
        {
            "query": "select date '2024-02-29' as d, 12.34::decimal(10, 2) as price, "
            "timestamp '2024-01-02 03:04:05' as ts, time '10:30:00' as t, "
            "'123e4567-e89b-12d3-a456-426614174000'::uuid as u, 'hi'::blob as b, "
            "interval 90 minute as span, 'nan'::double as nan, "
            "{'when': date '2024-01-01', 'n': 1.5::decimal(3,1)} as s, "
            "[date '2024-03-01'] as l, map([1], ['one']) as m"
        }
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [
        {
            "d": "2024-02-29",
            "price": 12.34,
            "ts": "2024-01-02T03:04:05",
            "t": "10:30:00",
            "u": "123e4567-e89b-12d3-a456-426614174000",
            "b": "aGk=",
            "span": 5400.0,
            "nan": None,
            "s": {"when": "2024-01-01", "n": 1.5},
            "l": ["2024-03-01"],
            "m": {"1": "one"},
        }
    ]
    assert isinstance(result.outputs["rows"][0]["price"], float)


async def test_mixed_type_column_comes_back_as_the_original_values() -> None:
    rows = [{"v": 1}, {"v": "two"}, {"v": [3]}, {"v": {"four": 4}}]
    result = await _run({"query": "select v from t", "tables": {"t": "{{start.rows}}"}}, rows=rows)
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == rows


async def test_sparse_rows_become_nullable_columns() -> None:
    rows = [{"a": 1}, {"b": "x"}, {"a": 3, "c": True}]
    result = await _run({"query": "select * from t", "tables": {"t": "{{start.rows}}"}}, rows=rows)
    assert result.outputs["columns"] == ["a", "b", "c"]
    assert result.outputs["rows"] == [
        {"a": 1, "b": None, "c": None},
        {"a": None, "b": "x", "c": None},
        {"a": 3, "b": None, "c": True},
    ]


async def test_empty_table_counts_zero() -> None:
    result = await _run(
        {"query": "select count(*) as n from t", "tables": {"t": "{{start.rows}}"}}, rows=[]
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [{"n": 0}]


async def test_params_are_bound_not_pasted() -> None:
    hostile = "x' or 1=1 --"
    result = await _run(
        {
            "query": "select region, amount from sales where region = $region or region = $other",
            "tables": {"sales": "{{start.rows}}"},
            "params": {"region": "south", "other": hostile},
        },
        rows=SALES,
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [{"region": "south", "amount": 5.0}]


async def test_several_statements_output_the_last_one() -> None:
    result = await _run(
        {
            "query": "create table t as select 41 as x; insert into t values (1); "
            "select sum(x) s from t"
        }
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["rows"] == [{"s": 42}]


async def test_duplicate_result_names_are_kept_apart() -> None:
    result = await _run({"query": "select 1 as a, 2 as a"})
    assert result.outputs["columns"] == ["a", "a_1"]
    assert result.outputs["rows"] == [{"a": 1, "a_1": 2}]


async def test_timeout_interrupts_a_long_query() -> None:
    doc = _workflow(
        {"query": "select sum(hash(i)) from range(1000000000000) t(i)", "timeoutMs": 300}
    )
    started = time.perf_counter()
    result = await Executor().run(load_definition(doc), {})
    assert result.status == "failed"
    assert result.nodes["q"].error is not None
    assert result.nodes["q"].error["type"] == "NodeTimeoutError"
    # The worker thread finishes only if DuckDB was interrupted (the query would run for hours).
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 5)
    assert time.perf_counter() - started < 6


async def test_references_in_sql_text_are_refused_and_params_bind_instead() -> None:
    injected = {"query": "select * from t where name = '{{start.text}}'", "tables": {"t": []}}
    (issue,) = validate_definition(load_definition(_workflow(injected)))
    assert (issue.node_id, issue.field) == ("q", "query")
    assert "params" in issue.message
    hostile = "x' or '1'='1"
    bound = {
        "query": "select name from t where name = $who",
        "tables": {"t": "{{start.rows}}"},
        "params": {"who": "{{start.text}}"},
    }
    result = await _run(bound, rows=[{"name": "x"}, {"name": "y"}], text=hostile)
    assert result.status == "succeeded"
    assert result.outputs["rows"] == []
