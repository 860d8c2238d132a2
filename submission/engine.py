"""The inference engine: the one module that imports vllm (and knows its version differences).

Everything else talks to an ``Engine``: ``generate(requests) -> completions per request``, where
a request is a tokenized prompt with its sampling settings. Test doubles implement the same.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_MAX_MODEL_LEN = 10240  # arc24's context for its Qwen models; a 30x30 answer is ~1035 tokens
DEFAULT_CPU_KV_CACHE_GIB = 2


@dataclass(frozen=True)
class GenerationRequest:
    prompt_token_ids: tuple[int, ...]
    max_tokens: int
    n: int = 1
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    token_count: int
    cumulative_logprob: float | None
    finish_reason: str | None  # "stop" (end of turn or stop string) or "length"


class Engine(Protocol):
    max_model_len: int

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    names: tuple[str, ...] = ()
    capabilities: tuple[tuple[int, int], ...] = ()

    @property
    def dtype(self) -> str:
        """float16 where any GPU lacks bfloat16 (compute capability below 8.0: T4, V100, P100)."""
        if self.kind == "cuda" and any(major < 8 for major, _ in self.capabilities):
            return "float16"
        return "bfloat16"


def detect_device() -> Device:
    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return Device(
            "cuda",
            tuple(torch.cuda.get_device_name(i) for i in range(count)),
            tuple(tuple(torch.cuda.get_device_capability(i)) for i in range(count)),
        )
    return Device("cpu")


@dataclass(frozen=True)
class EngineSettings:
    model: str
    dtype: str = "auto"  # "auto" picks from the device
    max_model_len: int = DEFAULT_MAX_MODEL_LEN  # capped at the model's max_position_embeddings
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_gib: float = DEFAULT_CPU_KV_CACHE_GIB
    enforce_eager: bool = False
    seed: int = 0


def model_context_limit(model_dir: str) -> int | None:
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("max_position_embeddings")


class VllmEngine:
    """vLLM's offline ``LLM``, built once; every ``generate`` is one batched call."""

    def __init__(self, settings: EngineSettings, device: Device | None = None, log=print):
        self.device = device or detect_device()
        self.dtype = self.device.dtype if settings.dtype == "auto" else settings.dtype
        limit = model_context_limit(settings.model)
        self.max_model_len = min(settings.max_model_len, limit) if limit else settings.max_model_len
        if self.device.kind == "cpu":
            # Unset, vLLM's CPU backend tries to reserve most of the RAM for the KV cache and fails.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kv_cache_gib))
        import vllm

        self.vllm_version = vllm.__version__
        self.settings = settings
        extra = {}
        if self.device.kind == "cpu":
            # vLLM 0.32's CPU build crashes ("CPU Generator does not use offset") when a seeded
            # request is prefilled in chunks; whole-prompt prefills avoid it.
            extra = {"enable_chunked_prefill": False, "max_num_batched_tokens": self.max_model_len}
        started = time.perf_counter()
        self.llm = vllm.LLM(
            model=settings.model,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            enforce_eager=settings.enforce_eager,
            seed=settings.seed,
            **extra,
        )
        self.start_seconds = time.perf_counter() - started
        log(f"engine: vLLM {self.vllm_version} on {self.device.kind} ({self.dtype}), "
            f"context {self.max_model_len}, started in {self.start_seconds:.1f}s")

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        from vllm import SamplingParams

        params = [
            SamplingParams(
                n=r.n,
                temperature=r.temperature,
                seed=r.seed,
                max_tokens=r.max_tokens,
                stop=list(r.stop) or None,
                logprobs=0,  # the sampled token's log-prob only: enough for cumulative_logprob
            )
            for r in requests
        ]
        prompts = [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=True)
        return [
            [Completion(c.text, len(c.token_ids), c.cumulative_logprob, c.finish_reason) for c in out.outputs]
            for out in outputs
        ]

    def close(self) -> None:
        """Stop the engine's worker processes now, rather than in vLLM's noisy exit hooks."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def describe(self) -> dict:
        return {
            "engine": "vllm",
            "vllm_version": self.vllm_version,
            "device": self.device.kind,
            "gpus": [
                {"name": n, "compute_capability": f"{a}.{b}"}
                for n, (a, b) in zip(self.device.names, self.device.capabilities)
            ],
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "start_seconds": round(self.start_seconds, 2),
        }
