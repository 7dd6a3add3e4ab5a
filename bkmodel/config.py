"""Configuration of the ResNet-BK language model: :class:`ModelConfig` and :class:`GuardConfig`.

Every field is validated on construction; errors name the field (``"eta_min must be > 0"``).
Configs round-trip through plain dicts (:meth:`ModelConfig.to_dict` /
:meth:`ModelConfig.from_dict`), which is how checkpoints store them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GuardConfig", "ModelConfig"]

_GUARD_ACTIONS = ("raise", "recompute_fp64", "skip_step")
_ROUTERS = ("learned", "scattering")
_BK_MODES = ("causal", "two_sided")
_POTENTIALS = ("linear", "moe")
_FFNS = ("mlp", "moe", "none")
_DISPATCH = ("auto", "sparse", "dense", "grouped")
_BACKENDS = ("auto", "torch", "triton", "naive")
_LAYERS = ("classic", "selective", "green")
_TIMESCALES = ("log_uniform", "constant")
_FEATURE_MAPS = ("cayley", "eta_g")
_QKV_ACTS = ("none", "silu")
_EMBEDDINGS = ("dense", "tt", "tt_phase")
#: Floor of Im z when ``eta_min`` is not given: the classic layer's, and the selective
#: layer's (below its shortest initial memory ``1/eta_init_min`` = 10^4 tokens).
_ETA_MIN_DEFAULT = {"classic": 1e-3, "selective": 1e-6, "green": 1e-6}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: Any, *, lo: float, lo_open: bool, hi: float | None = None,
                 hi_open: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value}")
    if (lo_open and v <= lo) or (not lo_open and v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and ((hi_open and v >= hi) or (not hi_open and v > hi)):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


@dataclass
class GuardConfig:
    """Runtime certificate guards of the BK scan (docs/conventions.md §8).

    Attributes
    ----------
    enabled : bool
        Run the guards on every BK scan.
    action : {"raise", "recompute_fp64", "skip_step"}
        On a violation: raise :class:`bkmodel.guards.GuardError`; recompute the scan in
        float64 (raise if that still fails); or mark the step to be skipped by the trainer
        (``model.last_aux["skip_step"]``) and replace non-finite features by zeros.
    tol : float
        Relative tolerance: Im g >= -tol/eta and |g| <= (1 + tol)/eta (both hold exactly
        in exact arithmetic), and the relative recurrence residual <= tol.
    sample_rate : float in [0, 1]
        Fraction of scans on which the recurrence residual is checked (the finite /
        Herglotz / bound counters run on every scan).
    residual_samples : int
        Positions sampled per residual check.
    """

    enabled: bool = True
    action: str = "recompute_fp64"
    tol: float = 1e-3
    sample_rate: float = 1.0
    residual_samples: int = 64

    def __post_init__(self) -> None:
        _check_bool("guard.enabled", self.enabled)
        _check_choice("guard.action", self.action, _GUARD_ACTIONS)
        _check_float("guard.tol", self.tol, lo=0.0, lo_open=True)
        _check_float("guard.sample_rate", self.sample_rate, lo=0.0, lo_open=False, hi=1.0,
                     hi_open=False)
        _check_int("guard.residual_samples", self.residual_samples, 1)


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`bkmodel.model.LanguageModel`.

    Attributes
    ----------
    vocab_size, d_model, n_layers : int
        Vocabulary, width and depth.
    n_seq : int
        Longest sequence ``forward`` accepts.
    n_channels : int
        C, the number of BK chains per layer (C = 1 is the seeds' layout).
    num_experts, top_k : int
        Mixture of experts: experts per MoE and experts per token (``top_k <= num_experts``).
    router : {"learned", "scattering"}
        Gate of the feed-forward MoE: a learned softmax top-k gate, or the parameter-free
        scattering router choosing experts from the phase arg g in (0, pi) of the block's BK
        output. The scattering router needs ``ffn="moe"``.
    potential : {"linear", "moe"}
        How the potentials v (B, N, C) are made from LN(x): one linear map, or a (learned
        gate) MoE followed by a linear map.
    ffn : {"mlp", "moe", "none"}
        The second sublayer of each block.
    potential_moe_residual : bool
        With ``potential="moe"``, also add the potential MoE's output to the residual
        stream (the seeds' layer returns ``MoE(x) + W_out [Re G, Im G]``).
    ffn_mult : int
        Hidden width of an MLP / expert is ``ffn_mult * d_model``.
    moe_dispatch : {"auto", "sparse", "dense", "grouped"}
        How an MoE sends tokens to experts. ``sparse`` gathers each expert's tokens (work
        O(tokens · top_k), but one host synchronisation per expert for the gather sizes);
        ``dense`` runs every expert on every token and weights the outputs by the gate
        (work O(tokens · num_experts), no synchronisation; same result up to rounding);
        ``grouped`` sorts the slots by expert and runs one grouped matmul per expert layer
        (work O(tokens · top_k) and no synchronisation; widths divisible by 8).
        ``auto``: dense on CUDA, where host synchronisations stall the launch queue, sparse
        elsewhere.
    eta_min : float, optional
        Floor of Im z: ``eta = eta_min + softplus(.) > 0``. Default 1e-3 for the classic
        layer, 1e-6 for the selective one.
    eta_init : float
        Initial eta_c (> eta_min).
    lam_init_range, lam_init_center : float
        lam_c are initialised evenly on [center - r, center + r] (the spectrum of
        tridiag(1, 0, 1) is [-2, 2]); with C = 1, lam = center.
    hop_init : float
        Initial hopping b_c.
    bk_mode : {"causal", "two_sided"}
        ``causal`` uses the edge Green's function g^L_i (depends on tokens <= i). The
        two-sided diagonal G_ii depends on future tokens: only :class:`bkmodel.model.BKEncoder`
        accepts it; :class:`bkmodel.model.LanguageModel` refuses it.
    aux_loss_weight : float
        Weight of the MoE load-balance loss added to the LM loss.
    tie_embeddings, bias : bool
        Tie the LM head to the token embedding; biases in linear layers.
    dropout : float in [0, 1)
    init_std : float
        Standard deviation of the normal initialisation of linear and embedding weights.
    scan_backend : {"auto", "torch", "triton", "naive"}
        Backend of :func:`bkmodel.ops.bk_scan.bk_scan`.
    guard : GuardConfig
        Runtime certificate guards (a dict is accepted and converted).
    layer : {"classic", "selective", "green"}
        The BK sequence-mixing layer. ``classic``: potentials v_i from the token, one
        ``z_c = lam_c + i eta_c`` and one hopping ``b_c`` per chain, features
        ``eta_c [Re g, Im g]`` (the seeds' row of the ablation table).
        ``selective`` (:class:`bkmodel.model.SelectiveBKLayer`): v_i, the absorption
        ``eta_i >= eta_min`` and the hopping ``b_i >= hop_min`` of every chain are computed
        from token i (after a short causal convolution), the chains' initial memory
        lengths ``~ b/eta`` spread log-uniformly over ``1/eta_init ... 1/eta_init_min``
        tokens, and the features are normalised and gated. A config dict without this key
        (checkpoints written before the field existed) means ``classic``.
        ``green`` (:class:`bkmodel.model.GreenBKLayer`): one selective chain per head
        (``n_channels`` heads) whose truncated resolvent entries ``G(i, j)`` weight
        ``(q_i . k_j) v_j`` — Green's-function attention, O(T) by chunks; the selective
        fields below apply to its chains.
    selective : bool
        Selective layer only: eta_i and b_i depend on the token (False: per-chain
        constants, the ablation "no selectivity").
    timescales : {"log_uniform", "constant"}
        Selective layer only: initial eta of the chains log-uniform on
        ``[eta_init_min, eta_init]``, or ``eta_init`` for every chain.
    eta_init_min : float
        Smallest initial eta (longest initial memory) of the log-uniform timescales.
    hop_min : float
        Selective layer only: floor of the hopping, ``b_i = hop_min + softplus(.) > 0``.
    conv_size : int
        Selective layer only: width of the depthwise causal convolution in front of the
        potentials (0: none).
    output_gate, out_norm : bool
        Selective layer only: multiply the features by ``silu(W_g LN(x))``; RMS-normalise
        them before the gate.
    n_energies : int
        Selective layer only: spectral points per operator. Each of the C per-token
        operators ``H = tridiag(b, v, b)`` is probed at m energies ``lam_{c,k} + i eta``
        (their own lam and absorption offsets, the same v and b): C·m scanned chains, the BK
        form of state expansion (m = 1: one Green's function per operator).
    feature_map : {"cayley", "eta_g"}
        Selective layer only: features of chain c at token i. ``cayley``: the Cayley
        transform ``(b_i g_i - i) / (b_i g_i + i)``, which maps the upper half-plane (g is
        Herglotz) onto the unit disc; ``eta_g``: ``eta_i g_i`` (in the unit disc by
        ``|g_i| <= 1/eta_i``, but ~eta_i small for the long-memory chains).
    key_dim, value_dim : int
        Green layer only: per-head sizes of q, k and of v (0: ``d_model // n_channels``).
    chunk_size : int
        Green layer only: chunk length of the chunked Green's-function attention.
    qkv_act : {"none", "silu"}
        Green layer only: activation of q, k and v after the causal convolution (``silu``:
        as Mamba-2 and Gated DeltaNet apply after theirs; the operator inputs v_i, eta_i,
        b_i are never activated). ``none`` (default): linear, as recorded before it existed.
    qk_norm : bool
        Green layer only: L2-normalise q and k per head (after ``qkv_act``), so that
        ``|q_i . k_j| <= 1`` before the ``1/sqrt(dk)`` scale (Gated DeltaNet's choice).
    embedding : {"dense", "tt", "tt_phase"}
        Token embedding: ``nn.Embedding``, or a tensor-train embedding of rank ``tt_rank``
        (:class:`bkmodel.tt_embedding.TTEmbedding`; ``tt_phase`` with the phase encoding).
        A TT embedding is never tied to the LM head (the head stays a dense V × d matrix).
    tt_rank : int
        Inner TT-rank of the ``tt``/``tt_phase`` embedding (>= 1).
    """

    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_seq: int = 256
    n_channels: int = 16
    num_experts: int = 4
    top_k: int = 1
    router: str = "learned"
    potential: str = "linear"
    ffn: str = "moe"
    ffn_mult: int = 4
    moe_dispatch: str = "auto"
    potential_moe_residual: bool = False
    eta_min: float | None = None
    eta_init: float = 0.5
    lam_init_range: float = 2.0
    lam_init_center: float = 0.0
    hop_init: float = 1.0
    bk_mode: str = "causal"
    aux_loss_weight: float = 1e-2
    tie_embeddings: bool = True
    bias: bool = True
    dropout: float = 0.0
    init_std: float = 0.02
    scan_backend: str = "auto"
    guard: GuardConfig = field(default_factory=GuardConfig)
    layer: str = "classic"
    selective: bool = True
    timescales: str = "log_uniform"
    eta_init_min: float = 1e-4
    hop_min: float = 0.1
    conv_size: int = 4
    output_gate: bool = True
    out_norm: bool = True
    feature_map: str = "cayley"
    n_energies: int = 1
    key_dim: int = 0
    value_dim: int = 0
    chunk_size: int = 64
    qkv_act: str = "none"
    qk_norm: bool = False
    embedding: str = "dense"
    tt_rank: int = 8

    def __post_init__(self) -> None:
        _check_choice("layer", self.layer, _LAYERS)
        if self.eta_min is None:
            self.eta_min = _ETA_MIN_DEFAULT[self.layer]
        if isinstance(self.guard, dict):
            self.guard = GuardConfig(**self.guard)
        if not isinstance(self.guard, GuardConfig):
            raise TypeError(f"guard must be a GuardConfig or dict, got {type(self.guard).__name__}")
        for name in ("vocab_size", "d_model", "n_layers", "n_seq", "n_channels", "num_experts",
                     "top_k", "ffn_mult"):
            _check_int(name, getattr(self, name), 1)
        if self.top_k > self.num_experts:
            raise ValueError(
                f"top_k must be <= num_experts, got top_k={self.top_k} > "
                f"num_experts={self.num_experts}"
            )
        _check_choice("router", self.router, _ROUTERS)
        _check_choice("potential", self.potential, _POTENTIALS)
        _check_choice("ffn", self.ffn, _FFNS)
        _check_choice("moe_dispatch", self.moe_dispatch, _DISPATCH)
        _check_choice("bk_mode", self.bk_mode, _BK_MODES)
        _check_choice("scan_backend", self.scan_backend, _BACKENDS)
        if self.potential_moe_residual and self.potential != "moe":
            raise ValueError("potential_moe_residual=True needs potential='moe'")
        if self.router == "scattering" and self.ffn != "moe":
            raise ValueError("router='scattering' routes the feed-forward MoE: it needs ffn='moe'")
        _check_float("eta_min", self.eta_min, lo=0.0, lo_open=True)
        _check_float("eta_init", self.eta_init, lo=0.0, lo_open=True)
        if self.eta_init <= self.eta_min:
            raise ValueError(f"eta_init must be > eta_min, got eta_init={self.eta_init} <= "
                             f"eta_min={self.eta_min}")
        _check_float("lam_init_range", self.lam_init_range, lo=0.0, lo_open=False)
        _check_float("lam_init_center", self.lam_init_center, lo=-math.inf, lo_open=True)
        _check_float("hop_init", self.hop_init, lo=-math.inf, lo_open=True)
        _check_float("aux_loss_weight", self.aux_loss_weight, lo=0.0, lo_open=False)
        _check_float("dropout", self.dropout, lo=0.0, lo_open=False, hi=1.0)
        _check_float("init_std", self.init_std, lo=0.0, lo_open=True)
        for name in ("tie_embeddings", "bias", "potential_moe_residual", "selective",
                     "output_gate", "out_norm"):
            _check_bool(name, getattr(self, name))
        _check_choice("timescales", self.timescales, _TIMESCALES)
        _check_choice("feature_map", self.feature_map, _FEATURE_MAPS)
        _check_int("conv_size", self.conv_size, 0)
        _check_int("n_energies", self.n_energies, 1)
        if self.n_energies > 1 and self.layer != "selective":
            raise ValueError(f"n_energies={self.n_energies} > 1 needs layer='selective'")
        _check_float("hop_min", self.hop_min, lo=0.0, lo_open=True)
        _check_float("eta_init_min", self.eta_init_min, lo=0.0, lo_open=True)
        for name in ("key_dim", "value_dim"):
            _check_int(name, getattr(self, name), 0)
        _check_int("chunk_size", self.chunk_size, 1)
        _check_choice("qkv_act", self.qkv_act, _QKV_ACTS)
        _check_bool("qk_norm", self.qk_norm)
        if self.layer != "green" and (self.qkv_act != "none" or self.qk_norm):
            raise ValueError(f"qkv_act and qk_norm act on the green layer's q, k, v: they need "
                             f"layer='green', got layer={self.layer!r}")
        if self.layer == "green":
            if self.n_energies != 1:
                raise ValueError(f"layer='green' needs n_energies=1, got {self.n_energies}")
            if (self.key_dim == 0 or self.value_dim == 0) and self.d_model % self.n_channels:
                raise ValueError(
                    f"layer='green' with key_dim/value_dim 0 (= d_model // n_channels) needs "
                    f"n_channels to divide d_model, got d_model={self.d_model}, "
                    f"n_channels={self.n_channels}")
        if self.layer in ("selective", "green"):
            if self.timescales == "log_uniform" and not (
                    self.eta_min < self.eta_init_min <= self.eta_init):
                raise ValueError(
                    "log-uniform timescales need eta_min < eta_init_min <= eta_init, got "
                    f"eta_min={self.eta_min}, eta_init_min={self.eta_init_min}, "
                    f"eta_init={self.eta_init}")
            if self.potential != "linear":
                raise ValueError(f"layer={self.layer!r} makes its potentials with a linear map "
                                 "and a causal convolution: it needs potential='linear'")
            if self.bk_mode != "causal":
                raise ValueError(f"layer={self.layer!r} is causal only: it needs bk_mode='causal'")
            if self.hop_init <= self.hop_min:
                raise ValueError(f"hop_init must be > hop_min for layer={self.layer!r}, got "
                                 f"hop_init={self.hop_init} <= hop_min={self.hop_min}")
        _check_choice("embedding", self.embedding, _EMBEDDINGS)
        _check_int("tt_rank", self.tt_rank, 1)

    @classmethod
    def seed_layout(cls, **overrides: Any) -> ModelConfig:
        """The seeds' layout: one BK chain per layer (C = 1), potentials from an MoE.

        The seeds' layer computes ``u = MoE(x)``, ``v = W_v u`` (d -> 1), the resolvent
        diagonal of ``H = tridiag(1, -2 + v, 1)`` at ``z = i``, and returns
        ``u + W_out [Re G, Im G]``, with no separate feed-forward. Here: the same layout
        (``potential="moe"``, ``potential_moe_residual=True``, ``ffn="none"``), with the
        -2 absorbed into ``lam = 2`` (``v - 2 - i = v - (2 + i)``), ``eta = 1``, ``b = 1`` at
        initialisation (learnable here, fixed in the seeds), and the causal g^L in place of
        the seeds' two-sided G_ii (which :class:`bkmodel.model.LanguageModel` refuses).
        """
        base: dict[str, Any] = dict(n_channels=1, potential="moe", ffn="none",
                                    potential_moe_residual=True, lam_init_center=2.0,
                                    eta_init=1.0, hop_init=1.0)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable), guard included as a nested dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"config must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        d = dict(d)
        d.setdefault("layer", "classic")  # written before the selective layer existed
        return cls(**d)
