"""A engine that cannot start says what the user can change (doubles where a real GPU is needed)."""

import json

import pytest

from submission import engine as engine_module
from submission.engine import Device, EngineSettings, EngineStartError, explain_start_failure, preflight, start_engine

P100 = Device("cuda", ("Tesla P100-PCIE-16GB",), ((6, 0),))
L4 = Device("cuda", ("NVIDIA L4",), ((8, 9),))


def test_a_gpu_below_compute_7_is_refused_before_vllm_starts(tiny_model_dir):
    with pytest.raises(EngineStartError, match=r"GPU Tesla P100-PCIE-16GB has compute capability 6.0; vLLM needs "
                                               r"7.0 or newer .*--machine-shape NvidiaL4"):
        preflight(EngineSettings(str(tiny_model_dir)), P100)
    preflight(EngineSettings(str(tiny_model_dir)), L4)  # fine


def test_a_folder_that_is_not_a_causal_lm_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    with pytest.raises(EngineStartError, match=r"architectures \['BertModel'\] name no causal language model"):
        preflight(EngineSettings(str(tmp_path)), L4)
    with pytest.raises(EngineStartError, match="no readable config.json"):
        preflight(EngineSettings(str(tmp_path / "nowhere")), L4)


@pytest.mark.parametrize("raised, device, expected", [
    (RuntimeError("Device string must not be empty"), Device("cpu"), "no usable GPU"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), L4,
     "out of memory (RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB): lower --max-model-len (it was "
     "12288), or raise --gpu-memory-utilization"),
    (ValueError("No available memory for the cache blocks. Try increasing `gpu_memory_utilization`"), L4,
     "out of memory"),
    (ValueError("something else entirely"), L4, "ValueError: something else entirely"),
])
def test_start_failures_are_explained(raised, device, expected):
    assert explain_start_failure(raised, EngineSettings("m"), device).startswith(expected)


def test_a_second_failed_start_raises_the_explained_cause(tiny_model_dir, monkeypatch):
    attempts = []

    def failing(settings, device=None, log=print):
        attempts.append(settings.max_model_len)
        raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")

    monkeypatch.setattr(engine_module, "detect_device", lambda: L4)
    monkeypatch.setattr(engine_module, "VllmEngine", failing)
    lines = []
    with pytest.raises(EngineStartError, match=r"^out of memory .*lower --max-model-len \(it was 4096\)"):
        start_engine(EngineSettings(str(tiny_model_dir)), log=lines.append)
    assert attempts == [12288, 4096] and len(lines) == 1 and "retrying once with context 4096" in lines[0]
