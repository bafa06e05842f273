"""`siamese TOOL ...`: every tool of the project behind one command, the way `git` works.

    siamese train CONFIG [--set key=value ...]      = python train.py ...
    siamese eval RUN_DIR ...                        = python eval.py ...
    siamese export RUN_DIR ...                      = python -m siamese.export ...
    siamese predict EXPORT_DIR a.png b.png          = python -m siamese.predict ...
    siamese gallery build|add|remove|query|...      = python -m siamese.gallery ...
    siamese pack IMAGE_DIR --out NAME               = python -m siamese.pack ...
    siamese launch --workers 2 train.py CONFIG      = python -m siamese.launch ...
    siamese serve EXPORT_DIR [--gallery FILE]       = python -m siamese.serve ...
    siamese bench [--quick] [--only ...]            = python -m siamese.bench ...

One command rather than a script per tool: one name to install and to remember, one
`siamese --help` that lists the tools, and no clash with other packages' `train` or `eval`
scripts on the PATH. Each tool keeps its own options (`siamese TOOL --help`).
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, List, Optional, Tuple

from . import eval as eval_tool
from . import export, gallery, launch, pack, predict, serve, train
from .bench import training as bench

# name -> (main(argv) -> exit status, one line for `siamese --help`)
TOOLS: Dict[str, Tuple[Callable[[Optional[List[str]]], int], str]] = {
    "train": (train.main, "train, choose the threshold on validation pairs, test, export"),
    "eval": (eval_tool.main, "score held-out pairs, n-way episodes, retrieval, open set"),
    "export": (export.main, "export a run again (float, ONNX, fused, int8)"),
    "predict": (predict.main, "compare two images, or embed a folder, with an export"),
    "gallery": (gallery.main, "enroll identities, identify probes, open-set thresholds"),
    "pack": (pack.main, "an MXNet RecordIO pack of an image folder"),
    "launch": (launch.main, "distributed training (parameter server) on one machine"),
    "serve": (serve.main, "serve an export over HTTP: verify, embed, identify, a web page"),
    "bench": (bench.main, "training and serving speed on this machine"),
}


def usage() -> str:
    width = max(len(n) for n in TOOLS)
    lines = ["usage: siamese TOOL [options]   (siamese TOOL --help for a tool's options)", "",
             "tools:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in TOOLS.items()]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run `siamese TOOL ARGS...`; exit 2 with the list of tools for an unknown one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in TOOLS:
        print(f"error: siamese: unknown tool {name!r} (valid: {', '.join(TOOLS)})",
              file=sys.stderr)
        return 2
    return TOOLS[name][0](rest)


if __name__ == "__main__":
    sys.exit(main())
