"""REST: conversations, their messages and chat turns (JSON or SSE)."""
