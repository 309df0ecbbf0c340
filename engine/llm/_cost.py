"""What a reply cost in US dollars, from litellm's bundled price table.

The table ships inside litellm (``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps it from being
downloaded), so prices are those of the installed version. Local models cost nothing;
a model litellm does not price is reported as 0 rather than failing the node.
"""

from __future__ import annotations

from engine.llm._loader import loaded_litellm

__all__ = ["cost_usd"]


def cost_usd(
    model: str, *, local: bool, prompt_tokens: int | None, completion: int | None
) -> float:
    if local or not (prompt_tokens or completion):
        return 0.0
    litellm = loaded_litellm()
    if litellm is None:  # a cloud reply always comes through litellm; be safe anyway
        return 0.0
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens or 0, completion_tokens=completion or 0
        )
    except Exception:  # not in the price table: unknown, custom or self-hosted model
        return 0.0
    return round(float(prompt_cost) + float(completion_cost), 10)
