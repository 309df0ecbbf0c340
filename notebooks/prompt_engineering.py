# mypy: ignore-errors
# ruff: noqa: B018 - a cell shows its last expression
# Prompt engineering: one question, prompt variants on two models side by side, a
# comparison table and a judge. Open it with `marimo edit notebooks/prompt_engineering.py`.
# Models come from $AGENTFLOW_MODEL and $AGENTFLOW_MODEL_B (local Ollama by default).

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import os

    import marimo as mo

    import notebooks as af

    return af, mo, os


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    # Prompt engineering

    Two prompt styles, two models, the same question. Change a system prompt or the
    question: only the cells that depend on it run again (the rest come from the node
    cache). The judge at the end compares the four answers.
    """)
    return


@app.cell
def _(os):
    MODEL_A = os.environ.get("AGENTFLOW_MODEL", "ollama/llama3.2")
    MODEL_B = os.environ.get("AGENTFLOW_MODEL_B", "ollama/llama3.2:1b")
    TERSE = "Answer in at most two sentences. No preamble."
    TEACHER = "You are a patient teacher. Explain step by step with one everyday example."
    return MODEL_A, MODEL_B, TEACHER, TERSE


@app.cell
def _(mo):
    question_box = mo.ui.text_area(value="Why do we have tides?", label="Question", full_width=True)
    question_box
    return (question_box,)


@app.cell
def _(af, question_box):
    question = af.start(question=af.input(str, default=question_box.value), label="Question")
    return (question,)


@app.cell
def _(MODEL_A, TERSE, af, question):
    terse_a = af.llm(
        model=MODEL_A,
        system_prompt=TERSE,
        user_prompt=question.question,
        temperature=0.2,
        label="terse · model A",
    )
    return (terse_a,)


@app.cell
def _(MODEL_B, TERSE, af, question):
    terse_b = af.llm(
        model=MODEL_B,
        system_prompt=TERSE,
        user_prompt=question.question,
        temperature=0.2,
        label="terse · model B",
    )
    return (terse_b,)


@app.cell
def _(MODEL_A, TEACHER, af, question):
    teacher_a = af.llm(
        model=MODEL_A,
        system_prompt=TEACHER,
        user_prompt=f"Explain to a curious 12-year-old: {question.question}",
        label="teacher · model A",
    )
    return (teacher_a,)


@app.cell
def _(MODEL_B, TEACHER, af, question):
    teacher_b = af.llm(
        model=MODEL_B,
        system_prompt=TEACHER,
        user_prompt=f"Explain to a curious 12-year-old: {question.question}",
        label="teacher · model B",
    )
    return (teacher_b,)


@app.cell
def _(mo, teacher_a, teacher_b, terse_a, terse_b):
    mo.vstack(
        [
            mo.hstack([terse_a, terse_b], widths="equal"),
            mo.hstack([teacher_a, teacher_b], widths="equal"),
        ]
    )
    return


@app.cell
def _(af, mo, teacher_a, teacher_b, terse_a, terse_b):
    def _row(variant, handle):
        info = af.run_info(handle)
        text = af.value(handle.text) or ""
        return {
            "variant": variant,
            "model": info["model"],
            "words": len(text.split()),
            "tokens": info["tokens"],
            "ms": round(info["durationMs"] or 0),
            "cached": info["cached"],
        }

    mo.ui.table(
        [
            _row("terse · A", terse_a),
            _row("terse · B", terse_b),
            _row("teacher · A", teacher_a),
            _row("teacher · B", teacher_b),
        ],
        selection=None,
        label="Comparison",
    )
    return


@app.cell
def _(MODEL_A, af, question, teacher_a, teacher_b, terse_a, terse_b):
    judge = af.llm(
        model=MODEL_A,
        system_prompt="You judge answers for accuracy and clarity. Be brief and decisive.",
        user_prompt=(
            f"Question: {question.question}\n\n"
            f"Answer 1: {terse_a.text}\n\n"
            f"Answer 2: {terse_b.text}\n\n"
            f"Answer 3: {teacher_a.text}\n\n"
            f"Answer 4: {teacher_b.text}\n\n"
            "Which answer is best? Reply with its number and one sentence why."
        ),
        temperature=0,
        label="Judge",
    )
    judge
    return (judge,)


@app.cell
def _(af, judge, teacher_a, teacher_b, terse_a, terse_b):
    verdict = af.end(
        verdict=judge.text,
        answers=[terse_a.text, terse_b.text, teacher_a.text, teacher_b.text],
        label="Verdict",
    )
    verdict
    return


if __name__ == "__main__":
    app.run()
