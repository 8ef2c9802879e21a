"""What n-gram (prompt-lookup) speculative decoding saves at c=1, in the forward pass.

RAG answers copy phrases of their sources, so the tokens after the answer's last few
tokens can be guessed from where those tokens occur earlier in the prompt or the
answer, and a greedy engine could check ``k`` guesses in one forward pass of ``k + 1``
rows. On the serving benchmark's own prompts (``bench.serve_load.prompts``: ~450
tokens of Python documentation and a question) this answers each greedily with the
packed bf16 forward pass and reports:

- tokens per step: how many tokens each verifying pass would yield (accepted guesses
  plus the one the pass computes anyway), for ``k`` of 2, 4 and 8, guessing from the
  longest match of the last 3, 2 or 1 tokens; and the same for answers sampled at
  temperature 0.7, which speculative sampling verifies;
- the cost of a verifying pass (``inference.speculation``, a draft chunk): the
  median time of a ``k + 1``-row draft chunk against a one-row decode step at the
  same position, with the model's weights and with INT8 decode weights;
- the projected speed-up of decode: tokens per step times one step's time over one
  verifying pass's.

It times the forward pass alone, with torch's threads; ``bench.serve`` measures
the engine serving it (``RAGSERVE_GENERATION_SPECULATE_TOKENS``). ``python -m
bench.speculation [--quick]`` (about a minute), JSON to
``bench/results/speculation[-quick].json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.decode_step import forwards
from bench.machine import describe, machine
from bench.serve_load import prompts
from inference.engine_support import render_chat
from inference.loader import LoadedModel, load_model
from inference.sampling import make_generator, sample_next
from inference.speculation import guess
from inference.step_batch import StepBatch
from inference.types import ChatMessage, SamplingParams

if TYPE_CHECKING:
    from inference.batch_forward import LlamaBatchForward

REPO = Path(__file__).resolve().parents[1]
GUESSES = (2, 4, 8)
SAMPLED = 0.7
"""The temperature of the sampled answers (speculative sampling)."""


def tokens_per_step(prompt: list[int], answer: list[int], k: int) -> tuple[int, int]:
    """(verifying passes, tokens) for ``answer`` after ``prompt`` with ``k`` guesses."""
    done = steps = 0
    while done < len(answer):
        guessed = guess(prompt + answer[:done], k)
        accepted = 0
        while (
            accepted < len(guessed)
            and done + accepted < len(answer)
            and guessed[accepted] == answer[done + accepted]
        ):
            accepted += 1
        done += accepted + 1
        steps += 1
    return steps, len(answer)


def answer_of(
    forward: LlamaBatchForward, prompt: list[int], max_tokens: int, eos: int, temperature: float
) -> list[int]:
    """The model's answer, greedy at ``temperature`` 0, else sampled (seeded)."""
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=len(prompt))
    generator = make_generator(params)
    batch = StepBatch()
    batch.logit_rows.append(batch.add_prefill(0, prompt, 0))
    token = sample_next(forward.forward(batch)[0], params, generator)
    answer = [token]
    while len(answer) < max_tokens and token != eos:
        batch = StepBatch()
        batch.logit_rows.append(batch.add_decode(0, token, len(prompt) + len(answer) - 1))
        token = sample_next(forward.forward(batch)[0], params, generator)
        answer.append(token)
    return answer


def acceptance_of(rendered: list[list[int]], answers: list[list[int]]) -> dict[str, float]:
    """Tokens per verifying pass for each ``k``, all answers together."""
    acceptance: dict[str, float] = {}
    for k in GUESSES:
        steps = tokens = 0
        for prompt, answer in zip(rendered, answers, strict=True):
            s, t = tokens_per_step(prompt, answer, k)
            steps, tokens = steps + s, tokens + t
        acceptance[str(k)] = round(tokens / steps, 3)
    return acceptance


def pass_ms(forward: LlamaBatchForward, position: int, rows: int, repeats: int) -> float:
    """Median ms of a ``rows``-row pass at ``position`` of slot 0: a decode step for
    one row, else a draft chunk wanting every row's logits (a verifying pass)."""
    times = []
    for _ in range(repeats + 2):
        batch = StepBatch()
        if rows == 1:
            batch.logit_rows.append(batch.add_decode(0, 1000, position))
        else:
            ids = [1000 + i for i in range(rows)]
            last = batch.add_prefill(0, ids, position, draft=True)
            batch.logit_rows.extend(range(last - rows + 1, last + 1))
        began = time.perf_counter()
        forward.forward(batch)
        times.append(time.perf_counter() - began)
    return statistics.median(times[2:]) * 1000


def measure(loaded: LoadedModel, count: int, max_tokens: int, repeats: int) -> dict[str, Any]:
    tokenizer = loaded.tokenizer
    texts = prompts(lambda t: len(tokenizer.encode(t)), count, seed=3)
    rendered = [render_chat(tokenizer, (ChatMessage(role="user", content=t),)) for t in texts]
    context = max(len(p) for p in rendered) + max_tokens + max(GUESSES) + 1
    made, _ = forwards(loaded, 1, context)
    eos = int(tokenizer.eos_token_id)
    answers = [answer_of(made["packed"], p, max_tokens, eos, 0.0) for p in rendered]
    # Speculative sampling keeps a guess exactly when the sampled token equals it
    # (a rejected draw excludes the guess), so a sampled answer's own guesses give
    # the passes verifying would take.
    sampled = [answer_of(made["packed"], p, max_tokens, eos, SAMPLED) for p in rendered]
    batch = StepBatch()  # real keys and values in the INT8 cache too
    batch.logit_rows.append(batch.add_prefill(0, rendered[-1], 0))
    made["int8"].forward(batch)
    acceptance = acceptance_of(rendered, answers)
    # Every slot-0 position up to the longest prompt holds real keys and values now.
    position = len(rendered[-1])
    cost: dict[str, dict[str, float]] = {}
    for name in ("packed", "int8"):
        one = pass_ms(made[name], position, 1, repeats)
        cost[name] = {"1": round(one, 2)}
        for k in GUESSES:
            cost[name][str(k + 1)] = round(pass_ms(made[name], position, k + 1, repeats), 2)
    projected = {
        name: {
            str(k): round(acceptance[str(k)] * cost[name]["1"] / cost[name][str(k + 1)], 3)
            for k in GUESSES
        }
        for name in cost
    }
    return {
        "prompts": count,
        "max_tokens": max_tokens,
        "answer_tokens": sum(len(a) for a in answers),
        "tokens_per_step": acceptance,
        f"tokens_per_step_sampled_t{SAMPLED}": acceptance_of(rendered, sampled),
        "pass_ms": cost,
        "projected_decode_speedup": projected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 prompts (about a minute)")
    args = parser.parse_args()
    info = machine()
    print(describe(info))
    loaded = load_model(None, cache_dir=REPO / ".cache" / "models")
    report = measure(loaded, 8 if args.quick else 32, 64, 10 if args.quick else 30)
    print(f"tokens per verifying pass (k guesses): {report['tokens_per_step']}")
    sampled = report[f"tokens_per_step_sampled_t{SAMPLED}"]
    print(f"tokens per verifying pass, sampled at temperature {SAMPLED}: {sampled}")
    print(f"pass ms (rows): {report['pass_ms']}")
    print(f"projected decode speed-up: {report['projected_decode_speedup']}")
    out = REPO / "bench" / "results" / f"speculation{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, **report}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
