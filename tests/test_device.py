"""Device-dependent engine choices that need no GPU to check."""

from submission.engine import Device, _attention_backend_kwargs


def test_dtype_follows_the_gpus_compute_capability():
    assert Device("cuda", ("Tesla T4", "Tesla T4"), ((7, 5), (7, 5))).dtype == "float16"
    assert Device("cuda", ("NVIDIA L4",) * 4, ((8, 9),) * 4).dtype == "bfloat16"
    assert Device("cuda", ("NVIDIA L4", "Tesla T4"), ((8, 9), (7, 5))).dtype == "float16"  # the weakest decides
    assert Device("cpu").dtype == "bfloat16"


def test_attention_backend_is_asked_for_the_way_the_installed_vllm_takes_it():
    # vLLM 0.32 (the CPU build here) has the engine argument; older releases get the environment variable
    assert _attention_backend_kwargs("TRITON_ATTN") == {"attention_backend": "TRITON_ATTN"}
