"""``bk demo``: the main job on the embedded defaults.

1. the quick certificate run (``bk certify --profile quick``), printing the table;
2. a tiny ResNet-BK training run on the Shakespeare corpus, ending in a validation
   perplexity and a sample.

Exit code: non-zero if a certificate has an unexpected outcome or training fails; 130 when
interrupted (Ctrl-C: one line, a training run keeps its checkpoint). Progress bars are shown
only when stdout and stderr are terminals (never with ``--no-progress``), so a redirected log
holds no progress frames. :func:`tiny_demo` is step 2 as a function. The training modules
(and torch) are imported only when it runs, so ``bk demo --skip-train`` never loads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bkmodel import cli

__all__ = ["configure_parser", "run", "tiny_demo", "cut_at_word"]

SAMPLE_TOKENS = 100


def cut_at_word(text: str, keep: int = 0) -> tuple[str, bool]:
    r"""``text`` cut after its last complete word, and whether it was cut.

    A sample of a fixed number of tokens usually stops inside a word: the partial word is
    dropped and `` …`` marks the cut. Text that ends in whitespace or a sentence mark is kept
    as it is; the first ``keep`` characters (the prompt) are never cut, so a tail with no
    word boundary is kept whole and only marked with ``…``.

    >>> cut_at_word("ROMEO.\nWhat light thro", keep=7)
    ('ROMEO.\nWhat light …', True)
    >>> cut_at_word("ROMEO.\nSoft!", keep=7)
    ('ROMEO.\nSoft!', False)
    """
    if not text or text[-1].isspace() or text[-1] in ".,;:!?":
        return text, False
    i = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
    if i < keep:
        return text + "…", True
    return text[:i].rstrip() + " …", True


def tiny_demo(out_dir: Path | str, *, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Train the ``tiny`` preset (ResNet-BK, sized for a CPU) into ``out_dir``.

    ``overrides`` are :class:`bkmodel.presets.TrainConfig` fields; ``progress`` shows the
    training progress bar. Returns ``{"val_ppl", "val_loss", "sample", "sample_cut",
    "params", "train_tokens_per_s", "out"}``; the validation perplexity is measured on the
    held-out validation works. ``sample`` is "ROMEO." and :data:`SAMPLE_TOKENS` sampled tokens,
    cut at the last word boundary (:func:`cut_at_word`; ``sample_cut`` says whether it was).
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
    summary = train(cfg, out, progress=progress)
    model, tok, _ = load_run(out)
    prompt = "ROMEO.\n"
    sample, cut = cut_at_word(generate_text(model, tok, prompt, max_new_tokens=SAMPLE_TOKENS),
                              keep=len(prompt))
    return {"val_ppl": summary["val_ppl"], "val_loss": summary["val_loss"], "sample": sample,
            "sample_cut": cut, "params": summary["params"],
            "train_tokens_per_s": summary["train_tokens_per_s"], "out": str(out)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)"
    )
    parser.add_argument("--skip-train", action="store_true", help="only run the certificates")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (also off when stdout or stderr is not a terminal)")


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stdout.isatty() and sys.stderr.isatty()


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress = _progress(args)
    print("== 1/2  certificates (bk certify --profile quick) ==", flush=True)
    certify = ["certify", "--profile", "quick", "--out", str(out)]
    code = cli.main(certify + ([] if progress else ["--no-progress"]))
    if code == 130 or args.skip_train:  # 130: interrupted, bk certify said so
        return code
    print("\n== 2/2  tiny training run (ResNet-BK on Shakespeare) ==", flush=True)
    run_dir = out / "tiny"
    try:
        result = tiny_demo(run_dir, progress=progress)
    except KeyboardInterrupt:
        print(f"bk demo: interrupted; the training run in {run_dir} keeps its last checkpoint",
              file=sys.stderr, flush=True)
        return 130
    print(f"\nvalidation perplexity: {result['val_ppl']:.2f}")
    print(f"run directory: {run_dir}  (bk eval {run_dir}; bk generate {run_dir})")
    how = ", cut at the last word" if result["sample_cut"] else ""
    print(f"sample ({SAMPLE_TOKENS} tokens{how}):\n" + result["sample"])
    return code
