"""Resumable turn streams: the per-turn token buffer and the runner of detached turns."""

from app.chat.resume.base import BufferedEvent, TokenBuffer
from app.chat.resume.fallback import FallbackTokenBuffer
from app.chat.resume.memory import MemoryTokenBuffer
from app.chat.resume.redis import RedisTokenBuffer

__all__ = [
    "BufferedEvent",
    "FallbackTokenBuffer",
    "MemoryTokenBuffer",
    "RedisTokenBuffer",
    "TokenBuffer",
]
