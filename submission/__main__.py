from .cli import main
from .engine import exit_process

# The guard matters: vLLM starts worker processes that re-import the main module.
if __name__ == "__main__":
    exit_process(main)
