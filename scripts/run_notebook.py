#!/usr/bin/env python3
"""Execute a notebook the way Kaggle does: every cell in order in a real Jupyter kernel (nbclient +
ipykernel), with this process's environment (KAGGLE_INPUT_DIR, KAGGLE_IS_COMPETITION_RERUN, ...).

    python scripts/run_notebook.py build/kernel/arc_prize_vllm_airv.ipynb [--python PYTHON] [--out executed.ipynb]

Prints the cells' output as it comes; exits 0 when every cell ran, 1 when a cell raised (its error
is the last line: what Kaggle shows when a version fails). --python runs the kernel under another
interpreter (it needs ipykernel); the default is this one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def kernel_spec_dir(python: str, root: Path) -> str:
    """A kernelspec named 'rehearsal' that starts ipykernel under ``python``; returns its name."""
    folder = root / "kernels" / "rehearsal"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"rehearsal ({python})", "language": "python"}))
    return "rehearsal"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--python", help="interpreter of the Jupyter kernel (default: this one's ipykernel)")
    p.add_argument("--out", type=Path, help="write the executed notebook here")
    p.add_argument("--cell-timeout", type=int, default=3600, help="seconds per cell (default: %(default)s)")
    args = p.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(args.notebook, as_version=4)
    nbformat.validate(notebook)
    with tempfile.TemporaryDirectory() as tmp:
        options = {}
        if args.python:  # found through JUPYTER_PATH, which the kernel spec manager reads
            os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, (tmp, os.environ.get("JUPYTER_PATH"))))
            options = {"kernel_name": kernel_spec_dir(args.python, Path(tmp))}

        def show(cell, cell_index, execute_reply=None, **_):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    sys.stdout.write(output.get("text", ""))
            sys.stdout.flush()

        client = NotebookClient(notebook, timeout=args.cell_timeout, on_cell_executed=show,
                                resources={"metadata": {"path": str(Path.cwd())}}, **options)
        try:
            client.execute()
            code = 0
        except CellExecutionError as exc:
            print(f"notebook: a cell failed: {exc.ename}: {exc.evalue}")
            code = 1
        finally:
            if args.out:
                nbformat.write(notebook, args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
