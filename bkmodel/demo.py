"""``bk demo``: the main job on the embedded defaults.

1. the quick certificate run (``bk certify --profile quick``), printing the table;
2. a tiny ResNet-BK training run on the Shakespeare corpus, ending in a validation
   perplexity and a sample.

Exit code: non-zero if a certificate has an unexpected outcome or training fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bkmodel import cli


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)"
    )
    parser.add_argument("--skip-train", action="store_true", help="only run the certificates")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print("== 1/2  certificates (bk certify --profile quick) ==", flush=True)
    code = cli.main(["certify", "--profile", "quick", "--out", str(out)])
    if args.skip_train:
        return code
    print("\n== 2/2  tiny training run (ResNet-BK on Shakespeare) ==", flush=True)
    from bkmodel.train import tiny_demo

    result = tiny_demo(out / "tiny")
    print(f"\nvalidation perplexity: {result['val_ppl']:.2f}")
    print("sample:\n" + result["sample"])
    return code
