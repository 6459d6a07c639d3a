"""An LLM provider's limits and prices: the knobs of `protocols.llm.gateway`.

What each limit counts, as the providers document it (see the research note and
`sim/presets/llm-models.yaml` for sources):

- `requests_per_minute`: one per request, at admission (both providers).
- `input_tokens_per_minute` (Anthropic ITPM): the request's input tokens, at admission.
- `output_tokens_per_minute` (Anthropic OTPM): by `output_charge`:
  - `generated` (Anthropic's documented rule: "OTPM counts actual output in real time,
    and max_tokens does not count"): the tokens generated, charged when the response
    ends; a request is admitted while the bucket holds at least one token, so a burst of
    long answers can drive it into debt that later requests wait out;
  - `max_tokens`: the request's `max_tokens`, reserved at admission (a stricter gateway).
- `tokens_per_minute` (OpenAI TPM, input and output in one bucket): the input tokens plus
  `max_tokens`, reserved at admission ("TPM reserves max(max_tokens, estimate)"); not
  refunded when the answer is shorter.
- `concurrency`: requests admitted and not yet answered; past it the answer is 429.
- `context_window`: input tokens (plus `max_tokens` when `context_counts_max_tokens`, as
  OpenAI counts them) above it are answered 400 at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["anthropic", "openai"]
OutputCharge = Literal["generated", "max_tokens"]


class LlmLimits(BaseModel):
    """A provider's rate limits on one model for one account (None: no such limit)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: float | None = Field(None, gt=0, description="RPM.")
    input_tokens_per_minute: float | None = Field(
        None, gt=0, description="ITPM (Anthropic): input tokens, charged at admission."
    )
    output_tokens_per_minute: float | None = Field(
        None, gt=0, description="OTPM (Anthropic): output tokens, charged per output_charge."
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="TPM (OpenAI): input tokens + max_tokens, at admission."
    )
    output_charge: OutputCharge = Field(
        "generated",
        description="How OTPM counts: 'generated' tokens when the answer ends (Anthropic), "
        "or 'max_tokens' reserved at admission.",
    )
    concurrency: int | None = Field(
        None, ge=1, description="Requests in flight at once (admitted, not answered)."
    )
    context_window: int | None = Field(
        None, ge=1, description="Tokens the model takes at most; more is answered 400."
    )
    context_counts_max_tokens: bool = Field(
        False,
        description="Whether max_tokens counts toward the context window (OpenAI: yes; "
        "Anthropic: the prompt alone, generation stops when the window fills).",
    )


class LlmPrices(BaseModel):
    """Prices in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0, description="$ per million input tokens.")
    output_per_mtok: float = Field(0.0, ge=0, description="$ per million output tokens.")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The price of one request's tokens, in dollars."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6
