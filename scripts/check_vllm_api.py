"""Whether the installed vLLM has everything submission/engine.py calls, without starting an engine.

Runs on a machine without a GPU, so the Kaggle bundle's pinned CUDA build can be checked here in an
environment made from its wheels (see docs/benchmarks.md), as well as the CPU build the tests use:

    python scripts/check_vllm_api.py            # exit 0: all present; 1: what is missing, one per line
"""



from submission.engine import api_problems, exit_process


def main() -> int:
    import vllm

    problems = api_problems()
    for problem in problems:
        print(f"missing: {problem}")
    print(f"vLLM {vllm.__version__}: " + ("everything submission/engine.py calls is there" if not problems
                                          else f"{len(problems)} of the calls submission/engine.py makes are not"))
    return 1 if problems else 0


if __name__ == "__main__":
    exit_process(main)
