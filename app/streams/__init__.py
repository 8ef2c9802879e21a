"""Resumable turn streams: the per-turn token buffer and the runner of detached turns."""

from app.streams.buffer import BufferedEvent, TokenBuffer
from app.streams.memory import MemoryTokenBuffer
from app.streams.redis_buffer import RedisTokenBuffer

__all__ = ["BufferedEvent", "MemoryTokenBuffer", "RedisTokenBuffer", "TokenBuffer"]
