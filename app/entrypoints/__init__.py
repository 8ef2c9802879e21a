"""The transports: REST (``rest/<resource>/``), WebSocket (``ws/``), OpenAI API (``openai/``)."""
