"""``bk generate``: sample text from a trained checkpoint, and how fast it was sampled.

The model's own ``generate`` does the decoding (ResNet-BK: one O(1) recurrence step per layer
and token; the Transformer baseline: a forward pass over the cropped context). Sampling is
seeded (``--seed``) and leaves the global RNG untouched.

Generation speed (:func:`timed_generate`) is measured around the unchanged ``generate`` call,
so the timed tokens are the ones the command prints. A forward hook on the module that ends
every step (ResNet-BK's ``lm_head``: called once by the prefill and once per decode step; the
baseline itself: one forward per token; the Hugging Face adapter itself, see
:func:`bkmodel.hf.timed_generate`) stamps ``time.perf_counter`` after each call, with
``torch.cuda.synchronize`` first on CUDA. The first stamp ends the **prefill** (the prompt
through the parallel scan, or the baseline's first forward); everything after it, sampling
included, is **decode**. Peak memory covers the whole call: peak RSS on CPU (``VmHWM``, reset
through ``/proc/self/clear_refs`` where the kernel allows, else the process-lifetime
``ru_maxrss``), ``torch.cuda.max_memory_allocated`` on CUDA (peak reset first).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["GenerationStats", "configure_parser", "generate_text", "generate_text_with_stats",
           "measure_generate", "run", "timed_generate"]


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------
@dataclass
class GenerationStats:
    """Speed and memory of one ``generate`` call.

    Attributes
    ----------
    architecture : str
        ``"resnet-bk"``, ``"transformer"`` or ``"resnet-bk (transformers)"``.
    device : str
        Device of the model's parameters.
    batch, prompt_tokens, new_tokens : int
        Rows, prompt length and generated tokens per row.
    prefill_s : float or None
        Seconds until the first step's logits (None when no step ran).
    prefill_tokens_per_s : float or None
        ``batch * prompt_tokens / prefill_s``.
    decode_s : float
        Seconds from the end of the prefill to the end of ``generate``.
    decode_steps : int
        Model steps after the prefill (ResNet-BK's ``generate`` runs one per token, the last
        one's logits unused; the baseline and the Hugging Face path one per token but the
        first).
    decode_tokens_per_s : float or None
        ``batch * new_tokens / decode_s`` (None for no new token).
    ms_per_token : float or None
        ``1000 * decode_s / new_tokens``: time per generated token of one row.
    peak_memory_mib : float
        Peak RSS (CPU) or peak allocated CUDA memory over the call.
    memory_growth_mib : float or None
        Peak above the value before the call (None where the CPU peak could not be reset).
    memory_kind : str
        ``"peak_rss"``, ``"peak_rss_lifetime"`` (``ru_maxrss``, not reset) or
        ``"cuda_max_memory_allocated"``.
    """

    architecture: str
    device: str
    batch: int
    prompt_tokens: int
    new_tokens: int
    prefill_s: float | None
    prefill_tokens_per_s: float | None
    decode_s: float
    decode_steps: int
    decode_tokens_per_s: float | None
    ms_per_token: float | None
    peak_memory_mib: float
    memory_growth_mib: float | None
    memory_kind: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    def format(self) -> str:
        """One line for a terminal, e.g. ``prefill 12 tokens in 3.1 ms (3,870 tokens/s) |
        decode 200 tokens in 0.53 s: 377.1 tokens/s (2.65 ms/token) | peak RSS 250.1 MiB``."""
        if self.prefill_s is None:
            pre = f"prefill {self.prompt_tokens} tokens: no model step"
        else:
            pre = (f"prefill {self.prompt_tokens:,} tokens in {_seconds(self.prefill_s)} "
                   f"({self.prefill_tokens_per_s:,.0f} tokens/s)")
        if self.decode_tokens_per_s is None:
            dec = "decode 0 tokens"
        else:
            dec = (f"decode {self.new_tokens:,} tokens in {_seconds(self.decode_s)}: "
                   f"{self.decode_tokens_per_s:,.1f} tokens/s ({self.ms_per_token:.2f} ms/token)")
        label = {"peak_rss": "peak RSS", "peak_rss_lifetime": "peak RSS (process lifetime)",
                 "cuda_max_memory_allocated": "peak CUDA allocated"}[self.memory_kind]
        mem = f"{label} {self.peak_memory_mib:,.1f} MiB"
        if self.memory_growth_mib is not None:
            mem += f" (+{self.memory_growth_mib:,.1f})"
        batch = f", batch {self.batch}" if self.batch != 1 else ""
        return f"{pre} | {dec} | {mem} [{self.architecture}, {self.device}{batch}]"


def _seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class _PeakMemory:
    """Peak memory over a region: CUDA allocations, or RSS (``VmHWM`` reset when possible)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.kind = "cuda_max_memory_allocated"
            return
        rss = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
            reset = rss is not None
        except OSError:
            reset = False
        self.kind = "peak_rss" if reset else "peak_rss_lifetime"
        self.base = rss * 1024 if reset and rss is not None else None

    def stop(self) -> tuple[float, float | None]:
        """(peak MiB, growth MiB or None)."""
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.kind == "peak_rss":
            peak = (_status_kib("VmHWM") or 0) * 1024
        else:  # ru_maxrss: KiB on Linux, bytes on macOS
            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = r if sys.platform == "darwin" else r * 1024
        growth = None if self.base is None else (peak - self.base) / 2**20
        return peak / 2**20, growth


class _StepClock:
    """``time.perf_counter`` stamps after every call of ``module`` (CUDA synchronised)."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.stamps: list[float] = []

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def __enter__(self) -> _StepClock:
        self.handle = self.module.register_forward_hook(
            lambda *_: self.stamps.append(self.now()))
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def _architecture(model: torch.nn.Module) -> str:
    from bkmodel.model import LanguageModel

    if isinstance(model, LanguageModel):
        return "resnet-bk"
    name = type(model).__name__
    return "transformer" if name == "TransformerBaseline" else name


def _step_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module called exactly once per model step of ``model.generate``."""
    from bkmodel.model import LanguageModel

    if isinstance(model, LanguageModel):
        return model.lm_head  # once in _prefill, once per _decode_step
    return model  # the baseline: one forward per generated token


def measure_generate(call: Callable[[], torch.Tensor], step_module: torch.nn.Module,
                     input_ids: torch.Tensor, *, architecture: str,
                     sequences: Callable[[Any], torch.Tensor] | None = None
                     ) -> tuple[Any, GenerationStats]:
    """Run ``call()`` (a ``generate``) under the step clock and the memory probe.

    Parameters
    ----------
    call : callable
        Runs the generation and returns its output.
    step_module : torch.nn.Module
        Called once per model step (the prefill being the first); its forward hook times them.
    input_ids : torch.Tensor
        (B, T) prompt handed to ``call``; ``new_tokens`` is the output length minus T.
    architecture : str
        Label recorded in the stats.
    sequences : callable, optional
        Maps the output of ``call`` to its (B, T + n) ids (default: the output itself).

    Returns
    -------
    output, GenerationStats
    """
    try:
        device = next(step_module.parameters()).device
    except StopIteration:
        device = input_ids.device
    mem = _PeakMemory(device)
    clock = _StepClock(step_module, device)
    mem.start()
    with clock:
        t0 = clock.now()
        out = call()
        t1 = clock.now()
    peak, growth = mem.stop()
    seq = out if sequences is None else sequences(out)
    B, T = input_ids.shape
    n = int(seq.shape[1]) - T
    stamps = clock.stamps
    prefill = stamps[0] - t0 if stamps else None
    decode = t1 - stamps[0] if stamps else t1 - t0
    return out, GenerationStats(
        architecture=architecture, device=str(device), batch=B, prompt_tokens=T, new_tokens=n,
        prefill_s=prefill,
        prefill_tokens_per_s=(B * T / prefill) if prefill else None,
        decode_s=decode, decode_steps=max(len(stamps) - 1, 0),
        decode_tokens_per_s=(B * n / decode) if n > 0 and decode > 0 else None,
        ms_per_token=1e3 * decode / n if n > 0 else None,
        peak_memory_mib=peak, memory_growth_mib=growth, memory_kind=mem.kind)


def timed_generate(model: torch.nn.Module, input_ids: torch.Tensor, max_new_tokens: int,
                   temperature: float = 1.0, top_k: int | None = None, *,
                   generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, GenerationStats]:
    """``model.generate(input_ids, max_new_tokens, ...)`` and its :class:`GenerationStats`.

    The call is the model's own ``generate`` unchanged (same tokens, same RNG draws); only a
    forward hook is added for its duration.

    Parameters
    ----------
    model : LanguageModel or TransformerBaseline
        The model; its ``generate`` takes ``(input_ids, max_new_tokens, temperature, top_k,
        generator=)``.
    input_ids : torch.Tensor
        (B, T) prompt ids on the model's device.
    max_new_tokens, temperature, top_k, generator
        Passed to ``generate``.

    Returns
    -------
    torch.Tensor, GenerationStats
        The (B, T + max_new_tokens) ids and the measurement.
    """
    with torch.no_grad():
        return measure_generate(
            lambda: model.generate(input_ids, max_new_tokens, temperature=temperature,
                                   top_k=top_k, generator=generator),
            _step_module(model), input_ids, architecture=_architecture(model))


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
def _prompt_ids(tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    return tokenizer.encode(prompt) or [tokenizer.eot_id]


def _sample_text(sample: Callable[[torch.Tensor], tuple[torch.Tensor, Any]], tokenizer,
                 prompt: str, max_new_tokens: int, seed: int,
                 device: str | torch.device) -> tuple[str, Any]:
    """``prompt`` and the decoded new tokens of ``sample(input_ids)`` (``(tokens, extra)``),
    run under ``seed`` with the global RNG restored afterwards, and ``extra``."""
    ids = _prompt_ids(tokenizer, prompt, max_new_tokens)
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        y, extra = sample(x)
    return prompt + tokenizer.decode(y[0, len(ids):].tolist()), extra


def generate_text(
    model: torch.nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 200,
    *,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> str:
    """``prompt`` followed by ``max_new_tokens`` sampled tokens, decoded to text.

    An empty prompt starts from the end-of-text token. ``temperature = 0`` is greedy.
    """
    text, _ = _sample_text(
        lambda x: (model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k),
                   None),
        tokenizer, prompt, max_new_tokens, seed, device)
    return text


def generate_text_with_stats(
    model: torch.nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 200,
    *,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[str, GenerationStats]:
    """:func:`generate_text` (the same text for the same arguments) and its
    :class:`GenerationStats` (:func:`timed_generate`)."""
    return _sample_text(
        lambda x: timed_generate(model, x, max_new_tokens, temperature=temperature,
                                 top_k=top_k),
        tokenizer, prompt, max_new_tokens, seed, device)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path,
                        help="run directory (from bk train --out) or checkpoint file")
    parser.add_argument("--prompt", default="ROMEO.\n", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=40, help="0 = no top-k filter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-stats", action="store_true",
                        help="do not print the generation speed and peak memory to stderr")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the speed and memory of every sample to PATH")


def run(args: argparse.Namespace) -> int:
    from bkmodel.checkpoint import CheckpointError, load_run
    from bkmodel.evaluate import check_device
    from bkmodel.tokenizer import TokenizerError

    try:
        check_device(args.device)
    except ValueError as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 2
    try:
        model, tok, state = load_run(args.checkpoint, device=args.device)
    except (CheckpointError, TokenizerError) as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 1
    measure = not args.no_stats or args.json is not None
    samples: list[dict[str, Any]] = []
    try:
        for i in range(args.num_samples):
            kw = dict(temperature=args.temperature, top_k=args.top_k or None,
                      seed=args.seed + i, device=args.device)
            if measure:
                text, stats = generate_text_with_stats(model, tok, args.prompt,
                                                       args.max_new_tokens, **kw)
                samples.append(stats.to_dict())
            else:
                text = generate_text(model, tok, args.prompt, args.max_new_tokens, **kw)
            if args.num_samples > 1:
                print(f"--- sample {i + 1} ---")
            print(text, flush=True)
            if not args.no_stats:
                print(f"bk generate: {stats.format()}", file=sys.stderr)
    except (ValueError, TypeError) as exc:
        print(f"bk generate: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        doc = {"command": "generate", "checkpoint": str(args.checkpoint),
               "prompt": args.prompt, "max_new_tokens": args.max_new_tokens,
               "temperature": args.temperature, "top_k": args.top_k or None,
               "seed": args.seed, "samples": samples}
        try:
            args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"bk generate: --json {args.json}: {exc}", file=sys.stderr)
            return 1
    return 0
