"""Text generation: model loading, the engine interface, its in-process implementations
and a remote OpenAI-compatible one.

NOTE: the names below are imported on first use (``kernel.lazy``), so that
``inference.errors`` or ``inference.types`` does not load torch.
"""

from typing import TYPE_CHECKING

from kernel.lazy import lazy_exports

if TYPE_CHECKING:
    from inference.batching_engine import BatchingEngine
    from inference.engine import Engine
    from inference.errors import (
        EngineOverloadedError,
        EngineUnavailableError,
        InferenceError,
        InvalidRequestError,
        ModelLoadError,
    )
    from inference.loader import LoadedModel, load_model
    from inference.local_engine import LocalEngine
    from inference.remote_engine import RemoteEngine
    from inference.types import (
        ChatMessage,
        FinishEvent,
        FinishReason,
        GenerationEvent,
        GenerationRequest,
        Priority,
        SamplingParams,
        TokenEvent,
    )
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "batching_engine": ("BatchingEngine",),
            "engine": ("Engine",),
            "errors": (
                "EngineOverloadedError",
                "EngineUnavailableError",
                "InferenceError",
                "InvalidRequestError",
                "ModelLoadError",
            ),
            "loader": ("LoadedModel", "load_model"),
            "local_engine": ("LocalEngine",),
            "remote_engine": ("RemoteEngine",),
            "types": (
                "ChatMessage",
                "FinishEvent",
                "FinishReason",
                "GenerationEvent",
                "GenerationRequest",
                "Priority",
                "SamplingParams",
                "TokenEvent",
            ),
        },
    )

__all__ = [
    "BatchingEngine",
    "ChatMessage",
    "Engine",
    "EngineOverloadedError",
    "EngineUnavailableError",
    "FinishEvent",
    "FinishReason",
    "GenerationEvent",
    "GenerationRequest",
    "InferenceError",
    "InvalidRequestError",
    "LoadedModel",
    "LocalEngine",
    "ModelLoadError",
    "Priority",
    "RemoteEngine",
    "SamplingParams",
    "TokenEvent",
    "load_model",
]
