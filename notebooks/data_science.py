# mypy: ignore-errors
# ruff: noqa: B018 - a cell shows its last expression
# A data-science workflow: DuckDB SQL over a CSV, a Python transform, a chart and an LLM
# summary. Open it with `marimo edit notebooks/data_science.py`; compile it with
# `agentflow compile notebooks/data_science.py`. The model comes from $AGENTFLOW_MODEL.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo

    import notebooks as af

    return Path, af, mo, os


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    # Monthly sales: SQL → Python → chart → summary

    Each cell below defines one workflow node. Edit a query or the prompt: that node and
    the ones after it run again; the others come from the node cache.
    """)
    return


@app.cell
def _(Path, os):
    MODEL = os.environ.get("AGENTFLOW_MODEL", "ollama/llama3.2")
    SALES_CSV = str(Path(__file__).parent / "data" / "sales.csv")
    return MODEL, SALES_CSV


@app.cell
def _(af):
    request = af.start(
        region=af.input(str, default="all", description="north, south, west or all"),
        label="Region",
    )
    request
    return (request,)


@app.cell
def _(SALES_CSV, af, request):
    sales = af.sql(
        "select month, region, product, units, revenue from read_csv($path) "
        "where $region = 'all' or region = $region order by month, region, product",
        params={"path": SALES_CSV, "region": request.region},
        label="Load sales.csv",
    )
    sales
    return (sales,)


@app.cell
def _(af, sales):
    monthly = af.sql(
        "select month, sum(units)::integer as units, round(sum(revenue), 2) as revenue "
        "from sales group by month order by month",
        sales=sales.rows,
        label="Monthly totals",
    )
    monthly
    return (monthly,)


@app.cell
def _(af, monthly):
    def growth_table(rows):
        table = []
        previous = None
        for row in rows:
            change = None
            if previous:
                change = round(100 * (row["revenue"] - previous) / previous, 1)
            table.append({**row, "growth_pct": change})
            previous = row["revenue"]
        best = max(table, key=lambda row: row["revenue"])
        total = round(sum(row["revenue"] for row in table), 2)
        return {"rows": table, "best_month": best["month"], "total": total}

    growth = af.code(growth_table, rows=monthly.rows, label="Month-on-month growth")
    growth
    return (growth,)


@app.cell
def _(af, growth):
    af.vegalite(
        {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": "Revenue per month",
            "width": 520,
            "height": 220,
            "data": {"values": af.value(growth.rows)},
            "mark": {"type": "bar", "tooltip": True, "invalid": None},
            "encoding": {
                "x": {"field": "month", "type": "ordinal", "title": None},
                "y": {"field": "revenue", "type": "quantitative", "title": "revenue"},
                "color": {
                    "field": "growth_pct",
                    "type": "quantitative",
                    "scale": {"scheme": "redyellowgreen", "domainMid": 0},
                    "title": "growth %",
                },
            },
        }
    )
    return


@app.cell
def _(MODEL, af, growth):
    summary = af.llm(
        model=MODEL,
        system_prompt="You are a concise business analyst.",
        user_prompt=(
            f"Monthly revenue with month-on-month growth in %: {growth.rows}\n"
            f"Best month: {growth.best_month}. Total revenue: {growth.total}.\n"
            "Summarise the year in three short bullet points."
        ),
        temperature=0.2,
        label="Summary",
    )
    summary
    return (summary,)


@app.cell
def _(af, growth, summary):
    report = af.end(
        summary=summary.text,
        best_month=growth.best_month,
        total=growth.total,
        rows=growth.rows,
        label="Report",
    )
    report
    return


if __name__ == "__main__":
    app.run()
