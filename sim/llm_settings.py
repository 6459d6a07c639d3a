"""An `llm` agent's settings block and the model profiles it may start from.

    agents:
      - id: summarizer
        role: llm
        llm: {model: claude-sonnet-4.6, tier: tier-1, output_tokens: {dist: uniform, low: 200, high: 800}}

`model` names a profile of `sim/presets/llm-models.yaml` (latency distributions, limits
per tier, prices, context window; each an editable assumption with its source and date);
every field set in the block wins over the profile's, and `limits` and `prices` merge
field by field. Without a profile the block must give `ttft` and `tokens_per_second`.
A caller whose channel to the agent is SSE gets the answer streamed as token events,
cut as `stream` says (`chunk_tokens` or `interval`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.llm import LlmLimits, LlmPrices, Provider
from sim.distributions import Constant, Distribution, FieldError, quoted

PROFILES_FILE = Path(__file__).resolve().parent / "presets" / "llm-models.yaml"


@functools.cache
def profiles() -> dict[str, dict[str, Any]]:
    """The model profiles of `sim/presets/llm-models.yaml`, by name."""
    data = yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))
    return dict(data["profiles"])


def profile_fields(name: str, tier: str | None) -> dict[str, Any]:
    """The settings a profile gives (its `tier`'s limits, or its default tier's)."""
    known = profiles()
    if name not in known:
        raise FieldError(
            "model", f"unknown model profile {quoted(name)}; known: {', '.join(known)}"
        )
    profile = known[name]
    tiers = profile.get("tiers", {})
    chosen = tier if tier is not None else profile.get("default_tier")
    if chosen is not None and not isinstance(chosen, str):
        # A list or mapping cannot name a tier (nor be looked up among them).
        raise FieldError(
            "tier", f"must name one of the tiers of model '{name}': {', '.join(tiers)}"
        )
    if chosen is not None and chosen not in tiers:
        raise FieldError(
            "tier", f"model '{name}' has no tier {quoted(chosen)}; known: {', '.join(tiers)}"
        )
    limits = dict(tiers.get(chosen, {})) if chosen is not None else {}
    for key in ("context_window", "context_counts_max_tokens"):
        if key in profile:
            limits[key] = profile[key]
    return {
        "provider": profile["provider"],
        "ttft": profile["ttft"],
        "tokens_per_second": profile["tokens_per_second"],
        "prices": dict(profile.get("prices", {})),
        "limits": limits,
    }


class LlmStream(BaseModel):
    """How an answer streamed over SSE is cut into token events (`protocols.llm.stream`)."""

    model_config = ConfigDict(extra="forbid")

    chunk_tokens: int = Field(
        50,
        ge=1,
        description="Tokens per token event after the first (which carries the first token "
        "alone, at the time to first token). Providers send a few tokens per delta; a "
        "bigger chunk keeps a long run's trace small.",
    )
    interval: float | None = Field(
        None,
        gt=0,
        description="Seconds between token events instead (each carries what was decoded "
        "since); None: by chunk_tokens.",
    )


class LlmSettings(BaseModel):
    """A model behind an `llm` agent: its latency, token counts, limits and prices."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="A profile of sim/presets/llm-models.yaml (e.g. claude-sonnet-4.6)."
    )
    tier: str | None = Field(None, description="The profile's limits tier (default: its own).")
    provider: Provider = Field(
        "anthropic", description="Whose API it is: anthropic or openai (header names, 529/503)."
    )
    ttft: Distribution | None = Field(None, description="Seconds to the first token.")
    tokens_per_second: Distribution | None = Field(
        None, description="Decode speed, drawn once per request."
    )
    input_tokens: Distribution = Field(
        default_factory=lambda: Constant(value=1000),
        description="Input tokens of a request whose body gives none (`input_tokens`).",
    )
    output_tokens: Distribution = Field(
        default_factory=lambda: Constant(value=300),
        description="Output tokens of an answer (rounded, at least 1, at most max_tokens).",
    )
    max_tokens: int = Field(1024, ge=1, description="The requests' max_tokens.")
    limits: LlmLimits = Field(default_factory=LlmLimits, description="The provider's limits.")
    prices: LlmPrices = Field(default_factory=LlmPrices, description="$ per million tokens.")
    stream: LlmStream = Field(
        default_factory=LlmStream,
        description="Token events of an answer streamed to a caller whose channel is SSE.",
    )

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: Any) -> Any:
        # The profile's values first, what the block sets over them.
        if not isinstance(data, dict) or data.get("model") is None:
            return data
        base = profile_fields(str(data["model"]), data.get("tier"))
        merged = {**base, **data}
        for key in ("limits", "prices"):
            if isinstance(data.get(key), dict):
                merged[key] = {**base[key], **data[key]}
        return merged

    @model_validator(mode="after")
    def _latency(self) -> LlmSettings:
        for name in ("ttft", "tokens_per_second"):
            if getattr(self, name) is None:
                raise FieldError(
                    name,
                    f"an llm agent needs {name}: name a model profile "
                    f"({', '.join(profiles())}) or give the distribution",
                )
        return self
