"""exit_process: the exit status of a command, without the interpreter's teardown once vllm is in."""

import subprocess
import sys

from conftest import ROOT

# A stand-in "vllm" module: the real import costs seconds and the teardown abort is flaky.
SCRIPT = """
import atexit, sys, types
if sys.argv[1] == "vllm":
    sys.modules["vllm"] = types.ModuleType("vllm")
from submission.engine import exit_process
atexit.register(lambda: print("teardown ran", flush=True))
print("work written")
outcome = sys.argv[2]
exit_process(lambda: int(outcome) if outcome.isdigit() else sys.exit(None if outcome == "none" else outcome))
"""


def _exit(imported: str, outcome: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, imported, outcome], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_with_vllm_imported_the_teardown_is_skipped_and_the_status_kept():
    assert _exit("vllm", "3") == (3, "work written\n", "")
    assert _exit("vllm", "0") == (0, "work written\n", "")
    assert _exit("vllm", "none") == (0, "work written\n", "")
    assert _exit("vllm", "error: bad file") == (1, "work written\n", "error: bad file\n")


def test_without_vllm_the_process_ends_as_sys_exit_would():
    assert _exit("none", "3") == (3, "work written\nteardown ran\n", "")
    assert _exit("none", "error: bad file") == (1, "work written\nteardown ran\n", "error: bad file\n")
