"""AI orchestration and model training (roadmap 3.3), the layer other AI plugins call models through.

Every model call goes through the core's LLM and embeddings ports, wrapped by the
``AiOrchestration`` service: a response cache (keyed by model, messages and parameters, with
a TTL), rate limits per principal and per model, tokens and cost recorded per call, the model
chosen by configuration (per feature) or per request, a fallback chain down to the offline
engine when a model fails or times out, conversation context windowed by tokens with older
turns summarised, and versioned prompt templates rendered safely. Intent classifiers are
trained (scikit-learn on embeddings) as background jobs and evaluated on a held-out split;
hosted LLMs are fine-tuned through the LLM port; messages are processed in resumable batches.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import AiOrchestration, Plugin, hookimpl


class MlOpsSettings(BaseModel):
    """Read from ``MYHIBACHI_ML_OPS_*``."""

    models: str = Field(default="offline=offline", description=(
        "The model catalogue: model=adapter of the LLM port, comma-separated (gpt-4o-mini=openai,offline=offline)."))
    default_model: str = Field(default="offline", description="The model a call uses when nothing else chooses.")
    feature_models: str = Field(default="", description="Per feature: feature=model, comma-separated.")
    fallbacks: str = Field(default="", description=(
        "The model tried next when one fails or times out: model=next, comma-separated; the offline engine ends "
        "every chain."))
    prices: str = Field(default="", description=(
        "Price per model in cents per million tokens, prompt/completion: gpt-4o-mini=15/60, comma-separated."))
    timeout_seconds: float = Field(default=20.0, gt=0, description="A model call taking longer falls back.")
    cache_ttl_seconds: int = Field(default=3600, ge=0, description="How long a response is answered from the cache.")
    rate_per_principal: int = Field(default=60, ge=1, description="Model calls one principal may make per window.")
    rate_per_model: int = Field(default=600, ge=1, description="Calls one model takes per window from everyone.")
    rate_window_seconds: int = Field(default=60, ge=1, description="The rate limits' window.")
    context_tokens: int = Field(default=3000, ge=50, description=(
        "Tokens of a conversation's turns sent with a call; older turns are summarised."))
    fine_tune_poll_seconds: int = Field(default=60, ge=0, description=(
        "How often the worker asks OpenAI for a running fine-tuning job's status."))
    batch_chunk_size: int = Field(default=50, ge=1, le=500, description="Batch items processed per transaction.")


def orchestrator(ctx) -> AiOrchestration:
    from myhibachi.plugins.ml_ops.service import orchestrator_of  # imported on first use, not at start-up

    return orchestrator_of(ctx)


class MlOpsPlugin(Plugin):
    name = "ml_ops"
    version = "1.0.0"
    flag = "FEATURE_FLAG_ML_TRAINING"
    description = "AI orchestration (cache, limits, costs, switching, fallback, context, templates) and training."
    features = {"3.3": ["test_model_training", "test_model_fine_tuning", "test_model_evaluation",
                        "test_batch_processing",
                        "test_ai_caching", "test_ai_rate_limiting",
                        "test_ai_cost_tracking", "test_ai_model_switching", "test_ai_fallback_handling",
                        "test_ai_context_management", "test_ai_prompt_templates"]}
    permissions = ("ai.use", "ai.read", "ai.write")
    settings = MlOpsSettings
    services = {AiOrchestration: orchestrator}

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.ml_ops import schemas as s

        return [Event("ai.call_completed", s.CallCompleted), Event("ai.template_saved", s.TemplateSaved),
                Event("ai.model_trained", s.ModelTrained), Event("ai.model_evaluated", s.ModelEvaluated),
                Event("ai.batch_completed", s.BatchCompleted)]

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.ml_ops.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = MlOpsPlugin()
