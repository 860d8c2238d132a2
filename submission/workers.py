"""Data parallel: one engine process per GPU, driven as one ``Engine``.

vLLM's offline data-parallel pattern for a model that fits one device: a process per GPU with
its own CUDA_VISIBLE_DEVICES, each with a whole engine. Every ``generate`` shares its requests out
by task so each worker gets a similar number of prompt tokens, then merges the results in
request order. A worker that dies leaves its share unfinished (None): the run sends those prompts
again, to the workers still alive (pipeline.LOST_RETRIES); when none is left, ``generate`` raises.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import defaultdict
from multiprocessing.connection import wait

from .engine import Completion, EngineSettings, GenerationRequest


def share_out(requests: list[GenerationRequest], workers: int) -> list[list[int]]:
    """Request positions per worker: whole groups (tasks), largest first, each to the worker with
    the fewest prompt tokens so far."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[r.group].append(i)
    tokens = {g: sum(len(requests[i].prompt_token_ids) * requests[i].n for i in idx) for g, idx in groups.items()}
    shares: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for group in sorted(groups, key=lambda g: -tokens[g]):
        w = load.index(min(load))
        shares[w].extend(groups[group])
        load[w] += tokens[group]
    return [sorted(s) for s in shares]


def _worker_main(conn, settings: EngineSettings, devices: str | None, index: int) -> None:
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before torch/vllm are imported
    from .engine import leave_without_teardown, start_engine

    def log(message: str) -> None:
        print(f"[worker {index}] {message}", flush=True)

    try:
        engine = start_engine(settings, log=log)
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.describe(), engine.max_model_len))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message is None:
                break
            requests, deadline = message
            try:
                conn.send(("ok", engine.generate(requests, deadline=deadline)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.close()
    leave_without_teardown(0)  # a worker's teardown can abort as the main process's can


class EnginePool:
    """``workers`` engine processes; on GPUs worker i sees GPU i % (number of GPUs)."""

    def __init__(self, settings: EngineSettings, workers: int, gpus: int = 0, log=print):
        self.log = log
        context = mp.get_context("spawn")
        self.workers = []
        for i in range(workers):
            parent, child = context.Pipe()
            devices = str(i % gpus) if gpus else None
            # not a daemon: vLLM starts processes of its own inside each worker
            process = context.Process(target=_worker_main, args=(child, settings, devices, i), daemon=False)
            process.start()
            child.close()
            self.workers.append({"index": i, "process": process, "conn": parent, "devices": devices, "alive": True})
        self.descriptions = []
        lengths = []
        for w in self.workers:
            try:
                status, *payload = w["conn"].recv()
            except EOFError:
                status, payload = "error", [f"exit code {w['process'].exitcode}"]
            if status != "ready":
                self.close()
                raise RuntimeError(f"worker {w['index']} failed to start: {payload[0]}")
            self.descriptions.append(payload[0])
            lengths.append(payload[1])
        self.max_model_len = min(lengths)
        log(f"engine: {workers} workers ready" + (f" on {gpus} GPU(s)" if gpus else " on CPU"))

    def _mark_dead(self, w, why: str, lost: int) -> None:
        w["alive"] = False
        self.log(f"engine: worker {w['index']} {why}; its {lost} prompts go back to the run, which sends them again "
                 "to the workers still alive")

    def generate(self, requests: list[GenerationRequest], deadline: float | None = None
                 ) -> list[list[Completion] | None]:
        live = [w for w in self.workers if w["alive"]]
        if not live:
            raise RuntimeError("every engine worker has died")
        results: list[list[Completion] | None] = [None] * len(requests)
        pending = {}
        for w, share in zip(live, share_out(requests, len(live))):
            if not share:
                continue
            try:
                w["conn"].send(([requests[i] for i in share], deadline))
                pending[w["conn"]] = (w, share)
            except (BrokenPipeError, OSError):
                self._mark_dead(w, "is gone", len(share))
        while pending:
            for conn in wait(list(pending)):
                w, share = pending.pop(conn)
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    w["process"].join(timeout=5)
                    self._mark_dead(w, f"died (exit code {w['process'].exitcode})", len(share))
                    continue
                if status == "ok":
                    for i, completions in zip(share, payload):
                        results[i] = completions
                else:
                    self.log(f"engine: worker {w['index']} failed on its {len(share)} prompts: {payload}")
        if not any(w["alive"] for w in self.workers):
            raise RuntimeError("every engine worker has died")
        return results

    def describe(self) -> dict:
        return {"engine": "vllm-pool", "workers": len(self.workers), "each": self.descriptions,
                **{k: self.descriptions[0][k] for k in ("vllm_version", "device", "dtype", "environment") if self.descriptions}}

    def close(self) -> None:
        for w in self.workers:
            if w["process"].is_alive():
                try:
                    w["conn"].send(None)
                except (BrokenPipeError, OSError):
                    pass
        for w in self.workers:
            w["process"].join(timeout=60)
            if w["process"].is_alive():
                w["process"].terminate()
