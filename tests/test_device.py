"""Device-dependent engine choices that need no GPU to check."""

from submission.engine import Device, EngineSettings, _attention_backend_kwargs, llm_arguments


def test_dtype_follows_the_gpus_compute_capability():
    assert Device("cuda", ("Tesla T4", "Tesla T4"), ((7, 5), (7, 5))).dtype == "float16"
    assert Device("cuda", ("NVIDIA L4",) * 4, ((8, 9),) * 4).dtype == "bfloat16"
    assert Device("cuda", ("NVIDIA L4", "Tesla T4"), ((8, 9), (7, 5))).dtype == "float16"  # the weakest decides
    assert Device("cpu").dtype == "bfloat16"


def test_attention_backend_is_asked_for_the_way_the_installed_vllm_takes_it():
    # vLLM 0.32 (the CPU build here) has the engine argument; older releases get the environment variable
    assert _attention_backend_kwargs("TRITON_ATTN") == {"attention_backend": "TRITON_ATTN"}


BASE = {"model": "m", "gpu_memory_utilization": 0.9, "enforce_eager": False, "seed": 0, "max_logprobs": 20}


def test_the_engine_arguments_on_a_cpu_bound_the_kv_cache_and_prefill_whole_prompts():
    settings = EngineSettings("m", cpu_kv_cache_gib=1.5, max_lora_rank=5, lora_adapters=12)
    assert llm_arguments(settings, Device("cpu"), "bfloat16", 4096) == {
        **BASE, "dtype": "bfloat16", "max_model_len": 4096,
        "enable_lora": True, "max_lora_rank": 8, "max_loras": 8, "max_cpu_loras": 12,
        "enable_chunked_prefill": False, "max_num_batched_tokens": 4096, "kv_cache_memory_bytes": 3 * 2**29,
    }


def test_the_engine_arguments_on_gpus_below_compute_capability_8_ask_for_triton_attention():
    t4 = Device("cuda", ("Tesla T4", "Tesla T4"), ((7, 5), (7, 5)))
    assert llm_arguments(EngineSettings("m", max_num_seqs=64), t4, "float16", 8192) == {
        **BASE, "dtype": "float16", "max_model_len": 8192, "max_num_seqs": 64, "attention_backend": "TRITON_ATTN",
    }
    l4 = Device("cuda", ("NVIDIA L4",) * 4, ((8, 9),) * 4)
    assert llm_arguments(EngineSettings("m", kv_cache_bytes=2**30, enable_prefix_caching=False), l4, "bfloat16",
                         8192) == {**BASE, "dtype": "bfloat16", "max_model_len": 8192,
                                   "enable_prefix_caching": False, "kv_cache_memory_bytes": 2**30}
