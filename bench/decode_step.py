"""The engine's forward pass per step: packed oneDNN weights against ``F.linear``.

One process, one model (the packaged SmolLM2, the engine's dtype choice), the same
KV state and the same steps for both variants of ``LlamaBatchForward``: the
default (bf16 projections on weights packed once, q/k/v stacked into one matrix;
``inference/packed_linear.py``) and ``pack_weights=False`` (``F.linear`` on the
model's own weights, the engine before packing), and the packed default with
decode rows on INT8 and on 4-bit copies (``decode_weights="int8"`` / ``"int4"``).
For each batch size, every slot holds a prompt of ``--context`` tokens; decode
steps alternate between the variants (so drift on a shared machine hits all
alike) and the medians are compared. A prefill point times one ``--chunk``-token
prompt chunk the same way, and sets its FLOP/s against the matmul roofline
measured in the same run: the best of ``F.linear`` and the packed oneDNN product on
the model's own projection shapes at ``--chunk`` rows, in the model's dtype. Decode
and prefill attention run in the C kernels (``inference/decode_attention.py``,
``inference/prefill_attention.py``, the defaults) except in ``sdpa``, the packed
default with both on torch's SDPA.
All decode from the same KV state (the packed variant's prefill, copied), and
the report says how often each row's greedy next token agrees with the packed
variant's; ``bench.decode_quality`` measures what the quantized weights cost.

Run ``python -m bench.decode_step [--quick]``; JSON goes to
``bench/results/decode_step[-quick].json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from bench.decode_quality import QUANTIZED, quantized_quality
from bench.generation import REPO
from bench.machine import describe, machine
from inference.batch_forward import LlamaBatchForward
from inference.kv_cache import KVCache
from inference.loader import LoadedModel, load_model
from inference.step_attention import load_attention
from inference.step_batch import StepBatch

VARIANTS = {
    "packed": (True, "model", True), "f_linear": (False, "model", True),
    "int8": (True, "int8", True), "int4": (True, "int4", True), "sdpa": (True, "model", False),
}  # fmt: skip
"""name: (``pack_weights``, ``decode_weights``, the attention kernels or torch's SDPA)
of ``LlamaBatchForward``."""


def forwards(
    loaded: LoadedModel, slots: int, context: int
) -> tuple[dict[str, LlamaBatchForward], dict[str, KVCache]]:
    layers, kv_heads, head_dim = LlamaBatchForward.cache_geometry(loaded.model)
    made, caches = {}, {}
    kernels = load_attention("auto", "auto", REPO / ".cache" / "models", loaded.device)
    for name, (pack, weights, attention) in VARIANTS.items():
        cache = KVCache(
            layers, slots, kv_heads, context + 64, head_dim, loaded.dtype, loaded.device
        )
        made[name] = LlamaBatchForward(
            loaded.model, cache, pack, weights, *(kernels if attention else (None, None))
        )
        caches[name] = cache
    return made, caches


def prefill(forward: LlamaBatchForward, slot: int, ids: list[int]) -> torch.Tensor:
    batch = StepBatch()
    batch.logit_rows.append(batch.add_prefill(slot, ids, 0))
    return forward.forward(batch)


def decode(forward: LlamaBatchForward, rows: int, position: int) -> torch.Tensor:
    batch = StepBatch()
    for slot in range(rows):
        batch.logit_rows.append(batch.add_decode(slot, 1000 + slot, position))
    return forward.forward(batch)


def timed(step: Any) -> tuple[float, torch.Tensor]:
    started = time.perf_counter()
    out = step()
    return time.perf_counter() - started, out


def decode_point(loaded: LoadedModel, rows: int, context: int, steps: int) -> dict[str, Any]:
    made, caches = forwards(loaded, rows, context)
    prompt = [(i * 7919) % 40000 + 100 for i in range(context)]
    for slot in range(rows):
        prefill(made["packed"], slot, prompt)
    # Both start from the same keys and values, so any disagreement comes from the
    # decode steps themselves (a long prompt's chunk rounds differently).
    for name in made:
        caches[name].keys.copy_(caches["packed"].keys)
        caches[name].values.copy_(caches["packed"].values)
        for slot in range(rows):  # copied, not written through the cache: say so
            caches[name].mark_written(slot, 0, context)
    seconds: dict[str, list[float]] = {name: [] for name in made}
    agree = dict.fromkeys(made, 0.0)
    for step in range(steps + 3):
        tokens = {}
        for name, forward in made.items():
            elapsed, logits = timed(lambda f=forward, at=context + step: decode(f, rows, at))
            tokens[name] = logits.argmax(-1)
            if step >= 3:  # warm-up steps are not timed
                seconds[name].append(elapsed)
        for name in made:  # the share of rows whose token matches, not all rows at once
            agree[name] += float((tokens["packed"] == tokens[name]).float().mean())
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    return {
        "rows": rows,
        "context": context,
        "steps": steps,
        "ms_per_step": {name: round(m * 1e3, 2) for name, m in medians.items()},
        "tokens_per_s": {name: round(rows / m, 1) for name, m in medians.items()},
        "speedup": round(medians["f_linear"] / medians["packed"], 3),
        "kernel_speedup": round(medians["sdpa"] / medians["packed"], 3),
        **{f"{n}_speedup": round(medians["packed"] / medians[n], 3) for n in QUANTIZED},
        "greedy_agreement": {
            n: round(a / (steps + 3), 3) for n, a in agree.items() if n != "packed"
        },
    }


def prefill_point(loaded: LoadedModel, chunk: int, repeats: int) -> dict[str, Any]:
    made, _ = forwards(loaded, 1, chunk)
    for name in QUANTIZED:
        del made[name]  # prompt rows run on the model's own weights
    prompt = [(i * 104729) % 40000 + 100 for i in range(chunk)]
    seconds: dict[str, list[float]] = {name: [] for name in made}
    for _ in range(repeats + 1):
        for name, forward in made.items():
            elapsed, _ = timed(lambda f=forward: prefill(f, 0, prompt))
            seconds[name].append(elapsed)
    medians = {name: statistics.median(s[1:]) for name, s in seconds.items()}
    return {
        "chunk_tokens": chunk,
        "ms": {name: round(m * 1e3, 1) for name, m in medians.items()},
        "prompt_tokens_per_s": {name: round(chunk / m) for name, m in medians.items()},
        "speedup": round(medians["f_linear"] / medians["packed"], 3),
        "kernel_speedup": round(medians["sdpa"] / medians["packed"], 3),
    }


def prefill_flops(loaded: LoadedModel, tokens: int) -> float:
    """FLOPs of a ``tokens``-token prefill from position 0: every decoder layer's
    projections (2 per weight per token) and causal attention (scores and values,
    half the square); the LM head runs for the last token only."""
    config = loaded.model.config
    linear = sum(
        module.weight.numel()
        for name, module in loaded.model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".layers." in f".{name}"
    )
    attention = 4 * config.num_hidden_layers * config.hidden_size * tokens * tokens / 2
    head = 2 * config.hidden_size * config.vocab_size
    return 2.0 * linear * tokens + attention + head


def matmul_roofline(loaded: LoadedModel, rows: int, repeats: int = 20) -> dict[str, float]:
    """GFLOP/s of ``rows``-row products on the model's projection shapes (the MLP's
    up and down products, the widest), plain ``F.linear`` and packed, best of each."""
    from inference.packed_linear import linear

    config = loaded.model.config
    dtype, device = loaded.dtype, loaded.device
    best: dict[str, float] = {}
    for n_in, n_out in ((config.hidden_size, config.intermediate_size),
                        (config.intermediate_size, config.hidden_size)):  # fmt: skip
        x = torch.randn(rows, n_in, dtype=dtype, device=device)
        weight = torch.randn(n_out, n_in, dtype=dtype, device=device) / n_in**0.5
        packed = linear(weight)  # F.linear itself where packing does not apply
        variants = {
            "f_linear": lambda x=x, w=weight: torch.nn.functional.linear(x, w),
            "packed": lambda x=x, p=packed: p(x),
        }
        for name, product in variants.items():
            for _ in range(3):
                product()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                product()
                times.append(time.perf_counter() - started)
            gflops = 2 * rows * n_in * n_out / min(times) / 1e9
            best[name] = max(best.get(name, 0.0), round(gflops, 1))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute)")
    parser.add_argument("--context", type=int, default=450, help="prompt tokens per slot")
    parser.add_argument("--chunk", type=int, default=256, help="prefill chunk tokens")
    args = parser.parse_args()
    steps = 10 if args.quick else 40
    info = machine()
    print(describe(info))
    loaded = load_model(None, REPO / ".cache" / "models")
    print(f"model {loaded.name}, dtype {loaded.dtype}, {torch.get_num_threads()} torch threads")
    points = [decode_point(loaded, rows, args.context, steps) for rows in (1, 8, 32)]
    prefilled = prefill_point(loaded, args.chunk, 3 if args.quick else 8)
    quality = quantized_quality(loaded, 8 if args.quick else 32)
    roofline = matmul_roofline(loaded, args.chunk)
    achieved = prefill_flops(loaded, args.chunk) / (prefilled["ms"]["packed"] / 1e3) / 1e9
    prefilled["roofline_gflops"] = roofline
    prefilled["achieved_gflops"] = round(achieved, 1)
    prefilled["share_of_roofline"] = round(achieved / max(roofline.values()), 3)
    with_sdpa = prefill_flops(loaded, args.chunk) / (prefilled["ms"]["sdpa"] / 1e3) / 1e9
    prefilled["share_of_roofline_sdpa"] = round(with_sdpa / max(roofline.values()), 3)
    for point in points:
        print(
            f"decode rows {point['rows']:>2}: packed {point['ms_per_step']['packed']} ms, "
            f"F.linear {point['ms_per_step']['f_linear']} ms, "
            f"int8 {point['ms_per_step']['int8']} ms, int4 {point['ms_per_step']['int4']} ms, "
            f"packed with SDPA attention {point['ms_per_step']['sdpa']} ms a step, "
            f"greedy agreement with packed {point['greedy_agreement']}"
        )
    print(
        f"prefill {args.chunk} tokens: packed {prefilled['ms']['packed']} ms, "
        f"F.linear {prefilled['ms']['f_linear']} ms, SDPA attention {prefilled['ms']['sdpa']} ms"
    )
    for point in points:
        print(f"ratio packed/F.linear decode rows {point['rows']}: {point['speedup']}x faster")
        for n in QUANTIZED:
            print(f"ratio {n}/packed decode rows {point['rows']}: {point[f'{n}_speedup']}x faster")
        print(f"ratio kernel/SDPA decode rows {point['rows']}: {point['kernel_speedup']}x faster")
    print(
        f"prefill {args.chunk} tokens: {prefilled['achieved_gflops']} GFLOP/s against a "
        f"matmul roofline of {max(roofline.values())} GFLOP/s ({roofline})"
    )
    print(f"ratio packed/F.linear prefill: {prefilled['speedup']}x faster")
    print(f"ratio kernel/SDPA prefill: {prefilled['kernel_speedup']}x faster")
    print(f"int8 and int4 decode weights against {loaded.dtype}, greedy answers: {quality}")
    print(
        f"ratio prefill/matmul roofline: {prefilled['share_of_roofline']} "
        f"(with SDPA attention {prefilled['share_of_roofline_sdpa']})"
    )
    out = REPO / "bench" / "results" / f"decode_step{'-quick' if args.quick else ''}.json"
    report = {"machine": info, "dtype": str(loaded.dtype), "decode": points, "quantized": quality}
    out.write_text(json.dumps({**report, "prefill": prefilled}, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
