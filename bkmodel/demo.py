"""``bk demo``: the main job on the embedded defaults.

1. the quick certificate run (``bk certify --profile quick``), printing the table;
2. a tiny ResNet-BK training run on the Shakespeare corpus, ending in a validation
   perplexity and a sample.

Exit code: non-zero if a certificate has an unexpected outcome or training fails.
:func:`tiny_demo` is step 2 as a function. The training modules (and torch) are imported only
when it runs, so ``bk demo --skip-train`` never loads them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bkmodel import cli

__all__ = ["configure_parser", "run", "tiny_demo"]


def tiny_demo(out_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """Train the ``tiny`` preset (ResNet-BK, sized for a CPU) into ``out_dir``.

    ``overrides`` are :class:`bkmodel.presets.TrainConfig` fields. Returns ``{"val_ppl",
    "val_loss", "sample", "params", "train_tokens_per_s", "out"}``; the validation perplexity
    is measured on the held-out validation works.
    """
    from bkmodel.checkpoint import CKPT_NAME, CKPT_PREV, load_run
    from bkmodel.generation import generate_text
    from bkmodel.presets import TrainConfig
    from bkmodel.train import train

    cfg = TrainConfig.from_preset("tiny", **overrides)
    out = Path(out_dir)
    if (out / CKPT_NAME).exists():  # a fresh run every time: the demo is reproducible
        for name in (CKPT_NAME, CKPT_PREV, "metrics.jsonl", "summary.json"):
            (out / name).unlink(missing_ok=True)
    summary = train(cfg, out)
    model, tok, _ = load_run(out)
    sample = generate_text(model, tok, "ROMEO.\n", max_new_tokens=100)
    return {"val_ppl": summary["val_ppl"], "val_loss": summary["val_loss"], "sample": sample,
            "params": summary["params"], "train_tokens_per_s": summary["train_tokens_per_s"],
            "out": str(out)}


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
    result = tiny_demo(out / "tiny")
    print(f"\nvalidation perplexity: {result['val_ppl']:.2f}")
    print("sample:\n" + result["sample"])
    return code
