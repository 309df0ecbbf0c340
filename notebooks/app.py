# mypy: ignore-errors
# A shareable app: `marimo run notebooks/app.py` serves a form; its button runs the
# workflow declared below through the engine (recorded in the store). The nodes do not
# run while the page loads (af.set_live(False)). The model comes from $AGENTFLOW_MODEL.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Explain it")


@app.cell
def _():
    import os

    import marimo as mo

    import notebooks as af

    af.set_live(False)
    MODEL = os.environ.get("AGENTFLOW_MODEL", "ollama/llama3.2")
    return MODEL, af, mo


@app.cell(hide_code=True)
def _(mo):
    topic = mo.ui.text(value="tides", label="Topic")
    audience = mo.ui.dropdown(
        options=["child", "student", "expert"], value="student", label="Audience"
    )
    length = mo.ui.dropdown(options=["short", "detailed"], value="short", label="Length")
    go = mo.ui.run_button(label="Explain")
    mo.vstack([mo.md("# Explain it"), mo.hstack([topic, audience, length]), go])
    return audience, go, length, topic


@app.cell
def _(af):
    request = af.start(
        topic=af.input(str, default="tides"),
        audience=af.input(str, default="student"),
        length=af.input(str, default="short"),
        label="Request",
    )
    return (request,)


@app.cell
def _(af, request):
    route = af.condition(
        cases={"child": af.when(request.audience, "==", "child")}, label="For a child?"
    )
    return (route,)


@app.cell
def _(MODEL, af, request, route):
    simple = af.llm(
        model=MODEL,
        system_prompt="You explain things to children: short sentences, one friendly example.",
        user_prompt=f"Explain {request.topic}. Keep it {request.length}.",
        after=route.child,
        label="Child explanation",
    )
    return (simple,)


@app.cell
def _(MODEL, af, request, route):
    plain = af.llm(
        model=MODEL,
        system_prompt="You explain things clearly and accurately.",
        user_prompt=f"Explain {request.topic} to a {request.audience}. Keep it {request.length}.",
        after=route.otherwise,
        label="Explanation",
    )
    return (plain,)


@app.cell
def _(af, plain, simple):
    answer = af.aggregate(simple.text, plain.text, label="Answer")
    return (answer,)


@app.cell
def _(af, answer, request):
    result = af.end(answer=answer.value, audience=request.audience, label="Result")
    return (result,)


@app.cell
def _(af, audience, go, length, mo, result, topic):
    mo.stop(not go.value, mo.md("Pick a topic and an audience, then press **Explain**."))
    run = af.run(
        result,
        inputs={"topic": topic.value, "audience": audience.value, "length": length.value},
    )
    answer_text = (run.outputs or {}).get("answer") or ""
    mo.vstack([af.view(answer_text), mo.accordion({"Run details": run})])
    return


if __name__ == "__main__":
    app.run()
