"""Text generation: model loading, the engine interface, its in-process implementations
and a remote OpenAI-compatible one."""

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
    SamplingParams,
    TokenEvent,
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
    "RemoteEngine",
    "SamplingParams",
    "TokenEvent",
    "load_model",
]
