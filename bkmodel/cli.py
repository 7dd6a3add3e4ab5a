"""The ``bk`` command line.

Each subcommand lives in its own module, imported only when that subcommand runs (so
``bk certify`` never imports torch). A subcommand module defines::

    def configure_parser(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...          # the exit code
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bkmodel.demo", "the main job: a quick certificate run and a tiny training run"),
    "certify": ("bkmath.checks.cli", "run the theorem checks and print the certificate table"),
    "train": ("bkmodel.train", "train a ResNet-BK (or baseline Transformer) language model"),
    "eval": ("bkmodel.evaluate", "validation/test perplexity of a checkpoint"),
    "generate": ("bkmodel.generation", "sample text from a checkpoint"),
    "flops": ("bkmodel.flops", "per-layer FLOPs of a checkpoint or of a preset's two models"),
    "quantize": ("bkmodel.quantize_cli", "INT8/INT4 weight-only quantization of a run (torchao)"),
    "export-hf": ("bkmodel.hf", "write a run as a Hugging Face AutoModelForCausalLM directory"),
    "export": ("bkmodel.export", "export a run for deployment (--format onnx: forward and, "
                                 "for ResNet-BK, the decode step)"),
    "causality": ("bkmodel.causality", "causality certificate of a model (perturb the future)"),
    "figures": ("bkpaper.cli", "regenerate every paper figure from real runs"),
}

_DESCRIPTION = """\
ResNet-BK: Birman-Schwinger operator analysis with numerical certificates, and the O(N)
ResNet-BK language model built on it.

Run `bk COMMAND --help` for the options of one command."""


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bk", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        top = _top_parser()
        args = top.parse_args(argv)
        if args.version:
            from bkmath import __version__

            print(f"resnet-bk {__version__}")
            return 0
        top.print_help()
        return 0 if not argv else 2
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"bk {name}", description=help_)
    module.configure_parser(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
