"""The chat turn: request, events, prompt, safety gate, pipeline, runner, resume buffers."""
