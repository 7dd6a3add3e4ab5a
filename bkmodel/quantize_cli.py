"""``bk quantize RUN --bits 8|4 [--group-size 32|128] [--qat] --out QRUN``.

Loads a trained run (:func:`bkmodel.checkpoint.load_run`), quantizes its linear weights with
torchao (:mod:`bkmodel.quantize`: post-training, or with ``--qat`` a short fake-quantized
fine-tune on the run's training split and then the conversion) and writes a quantized run
directory that ``bk eval QRUN`` reads. Example::

    bk quantize runs/lm_compare/tiny-bk --bits 4 --group-size 32 --out runs/q/bk-int4-g32
    bk eval runs/q/bk-int4-g32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bkmodel.checkpoint import CheckpointError, load_run, model_spec
from bkmodel.data import load_split
from bkmodel.quantize import (
    BITS,
    QuantizeError,
    QuantScheme,
    convert_qat,
    prepare_qat,
    qat_finetune,
    quantize_model,
    save_quantized,
)
from bkmodel.tokenizer import encode_documents

__all__ = ["configure_parser", "quantize_run", "run"]

QAT_STEPS = 100
QAT_LR = 3e-4


def quantize_run(
    source: Path | str,
    out: Path | str,
    *,
    bits: int,
    group_size: int | None = None,
    in_proj: bool = False,
    qat: bool = False,
    qat_steps: int = QAT_STEPS,
    qat_lr: float = QAT_LR,
    qat_seed: int = 0,
    log=None,
) -> dict[str, Any]:
    """Quantize the run ``source`` into the directory ``out``; returns the report.

    Raises :class:`QuantizeError` for bad arguments (before anything is loaded) and
    :class:`bkmodel.checkpoint.CheckpointError` for an unreadable source run.
    """
    scheme = QuantScheme(bits=bits, group_size=group_size, in_proj=in_proj)
    if Path(out).resolve() == Path(source).resolve():
        raise QuantizeError("--out must differ from the source run")
    model, tok, state = load_run(source)
    src = {"model_spec": model_spec(model), "train_config": state["train_config"],
           "step": state["step"]}
    if qat:
        report = prepare_qat(model, scheme)
        tokens = encode_documents(tok, load_split("train", state["train_config"]["corpus"]))
        losses = qat_finetune(model, state["train_config"], tokens, steps=qat_steps,
                              lr=qat_lr, seed=qat_seed, log=log)
        convert_qat(model, report)
        report["qat"] = {"steps": qat_steps, "lr": qat_lr, "seed": qat_seed,
                         "applied_steps": len(losses),
                         "final_loss": losses[-1] if losses else None}
    else:
        report = quantize_model(model, scheme)
        report["qat"] = None
    report["source"] = str(source)
    report["source_step"] = state["step"]
    doc = (Path(source) / "tokenizer.json").read_text() \
        if (Path(source) / "tokenizer.json").is_file() else state["tokenizer"]
    save_quantized(model, out, report=report, source=src, tokenizer_doc=doc)
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="trained run directory (bk train --out)")
    parser.add_argument("--bits", type=int, required=True,
                        help="8 (per-row int8) or 4 (group-wise int4)")
    parser.add_argument("--group-size", type=int, default=None,
                        help="int4 group size: 32 or 128 (default 128)")
    parser.add_argument("--qat", action="store_true",
                        help="quantization-aware fine-tune before converting")
    parser.add_argument("--qat-steps", type=int, default=QAT_STEPS)
    parser.add_argument("--qat-lr", type=float, default=QAT_LR)
    parser.add_argument("--quantize-in-proj", action="store_true",
                        help="also quantize the BK layer's input projection (v, eta, b)")
    parser.add_argument("--out", type=Path, required=True, help="quantized run directory")


def run(args: argparse.Namespace) -> int:
    if args.bits not in BITS:
        print(f"bk quantize: --bits must be 8 or 4, got {args.bits}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        rep = quantize_run(args.run, args.out, bits=args.bits, group_size=args.group_size,
                           in_proj=args.quantize_in_proj, qat=args.qat,
                           qat_steps=args.qat_steps, qat_lr=args.qat_lr, log=say)
    except (QuantizeError, CheckpointError, ImportError) as exc:
        print(f"bk quantize: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, QuantizeError) else 1
    scheme = QuantScheme(**rep["scheme"])
    print(f"{scheme.label}{' (QAT)' if rep['qat'] else ''}: {len(rep['quantized'])} linear "
          f"layers quantized, {len(rep['kept'])} kept in float32 -> {args.out}")
    for name, why in rep["kept"].items():
        print(f"  kept {name}: {why}")
    return 0
