"""The naive serving baseline: a FastAPI app that calls Hugging Face ``generate`` for
each request, one at a time, streaming its text as OpenAI chat completion chunks.

What a team gets by wrapping ``generate`` in a web framework: no batching (a lock
serialises the requests), no KV reuse. Run by ``bench/serve.py``:

    python -m bench.naive_server --port 8101 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / ".cache" / "models" / "smollm2-135m-instruct"


def create_app(model_dir: Path, dtype: torch.dtype) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    lock = threading.Lock()  # one generate at a time: the naive server
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> Any:
        prompt = tokenizer.apply_chat_template(
            body["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        max_tokens = int(body.get("max_tokens") or 64)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        done: dict[str, int] = {}

        def work() -> None:
            with lock, torch.inference_mode():
                out = model.generate(
                    prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    streamer=streamer,
                    pad_token_id=tokenizer.eos_token_id,
                )
            done["completion_tokens"] = int(out.shape[1] - prompt.shape[1])

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:16]}", int(time.time())
        usage = lambda: {  # noqa: E731
            "prompt_tokens": int(prompt.shape[1]),
            "completion_tokens": done.get("completion_tokens", 0),
            "total_tokens": int(prompt.shape[1]) + done.get("completion_tokens", 0),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            payload = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model", "naive"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        if not body.get("stream"):
            text = "".join([piece async for piece in _pieces(streamer)])
            await asyncio.to_thread(thread.join)
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": body.get("model", "naive"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage(),
                }
            )

        async def events() -> Any:
            yield chunk({"role": "assistant", "content": ""})
            async for piece in _pieces(streamer):
                if piece:
                    yield chunk({"content": piece})
            await asyncio.to_thread(thread.join)
            yield chunk({}, "stop")
            final = {"id": rid, "object": "chat.completion.chunk", "choices": [], "usage": usage()}
            yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _pieces(streamer: TextIteratorStreamer) -> Any:
    """The streamer's text pieces, waited for off the event loop."""
    pieces = iter(streamer)
    while True:
        piece = await asyncio.to_thread(next, pieces, None)
        if piece is None:
            return
        yield piece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    app = create_app(MODEL_DIR, getattr(torch, args.dtype))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
