"""The WebSocket chat protocol and its handler."""
