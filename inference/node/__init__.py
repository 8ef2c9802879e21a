"""The ``ragserve inference`` node: one engine behind an OpenAI-compatible API."""

from inference.node.app import create_node_app

__all__ = ["create_node_app"]
