"""Reader for dlib's binary serialization format and the DNN layer records it carries.

Only the subset needed for dlib's ResNet model files: integers, bools, floats, strings,
tensors, and the con_/affine_/pool/fc_ layer records with their add_layer bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# dlib's float_details marks non-finite values with these reserved exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002
# dlib writes bools as the ASCII digits '0' and '1'.
_BOOL_BYTES = {0x30: False, 0x31: True}
# Sanity bound on a tensor's element count: dlib's largest public models are far below it,
# and it keeps a corrupt header from asking numpy for terabytes.
_MAX_TENSOR_ELEMENTS = 1 << 28


class DlibReader:
    """Sequential reader over dlib-serialized bytes; every failure is a ValueError."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        """Wrap `data`; `source` names it in error messages."""
        self._data = memoryview(data)
        self._pos = 0
        self._source = source

    @property
    def pos(self) -> int:
        """Current byte offset."""
        return self._pos

    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def fail(self, message: str, at: int | None = None) -> ValueError:
        """Build a ValueError naming the file and the byte offset (default: the current one)."""
        return ValueError(f"{self._source}: {message} (at byte {self._pos if at is None else at})")

    def _take(self, count: int, what: str) -> memoryview:
        if count > self.remaining():
            raise self.fail(f"file ends inside {what}: need {count} bytes, {self.remaining()} left")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def int_(self, what: str) -> int:
        """Read an integer: a control byte (low nibble = size, 0x80 = negative), then LE bytes."""
        start = self._pos
        control = self._take(1, what)[0]
        size = control & 0x0F
        # Bits 0x70 are never set by dlib; seeing them means we are not where we think we are.
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", at=start)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def bool_(self, what: str) -> bool:
        """Read a bool stored as ASCII '0' or '1'."""
        byte = self._take(1, what)[0]
        if byte not in _BOOL_BYTES:
            raise self.fail(f"bad bool byte 0x{byte:02x} for {what}")
        return _BOOL_BYTES[byte]

    def float_(self, what: str) -> float:
        """Read a float_details pair (int64 mantissa, int16 exponent) as mantissa * 2**exponent."""
        first = self._data[self._pos] if self.remaining() else 0
        # Old dlib wrote floats as ASCII text, whose bytes always have some 0x70 bit set.
        if first & 0x70:
            raise self.fail(f"{what} uses dlib's legacy ASCII float format, not supported")
        mantissa = self.int_(what)
        exponent = self.int_(what)
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -32768 <= exponent < _EXP_INF:
            raise self.fail(f"float exponent {exponent} out of range for {what}")
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError as exc:
            raise self.fail(f"float overflows for {what}") from exc

    def string(self, what: str, max_len: int = 256) -> str:
        """Read a string: its length as an integer, then its bytes."""
        length = self.int_(what)
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length} for {what}")
        raw = bytes(self._take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail(f"non-ASCII bytes in {what}") from exc

    def expect_int(self, expected: int, what: str) -> None:
        """Read an integer and fail unless it equals `expected`."""
        start = self._pos
        got = self.int_(what)
        if got != expected:
            self._pos = start
            raise self.fail(f"expected {what} = {expected}, found {got}")

    def expect_string(self, expected: str, what: str) -> None:
        """Read a string and fail unless it equals `expected` (dlib's per-layer version tag)."""
        start = self._pos
        got = self.string(what)
        if got != expected:
            self._pos = start
            raise self.fail(f"expected {what} {expected!r}, found {got!r}")

    def dims(self, what: str) -> tuple[int, int, int, int]:
        """Read four non-negative dimensions (num_samples, k, nr, nc)."""
        values = tuple(self.int_(what) for _ in range(4))
        if any(v < 0 for v in values):
            raise self.fail(f"negative dimension {values} in {what}")
        return values[0], values[1], values[2], values[3]

    def tensor(self, what: str) -> np.ndarray:
        """Read a resizable_tensor: version 2, four dims, then float32 little-endian data."""
        self.expect_int(2, f"{what} tensor version")
        shape = self.dims(what)
        count = math.prod(shape)
        if count > _MAX_TENSOR_ELEMENTS:
            raise self.fail(f"implausible tensor shape {shape} for {what}")
        raw = self._take(4 * count, what)
        # Copy so the array owns its memory and does not pin the whole file buffer.
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if not np.all(np.isfinite(values)):
            raise self.fail(f"non-finite values in {what}")
        return values

    def alias(self, what: str) -> tuple[int, int, int, int]:
        """Read an alias_tensor: version 1, then four dims (a view's shape, no data)."""
        self.expect_int(1, f"{what} alias version")
        return self.dims(what)


@dataclass(frozen=True)
class Conv:
    """dlib con_: cross-correlation plus bias; filters are [out, in, nr, nc]."""

    filters: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), on both sides


@dataclass(frozen=True)
class Affine:
    """dlib affine_ (batch norm frozen after training): y = gamma[c] * x + beta[c]."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    """dlib relu_."""


@dataclass(frozen=True)
class Pool:
    """dlib max_pool_/avg_pool_; a (0, 0) window spans the whole map (avg_pool_everything)."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (nr, nc)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Tag:
    """dlib tagN: remembers the tensor at this point under `tag_id`."""

    tag_id: int


@dataclass(frozen=True)
class Skip:
    """dlib skipN: continues from the most recent tagN tensor."""

    tag_id: int


@dataclass(frozen=True)
class AddPrev:
    """dlib add_prevN: current + most recent tagN, zero-padding the smaller one."""

    tag_id: int


@dataclass(frozen=True)
class Fc:
    """dlib fc_: y = flatten(x) @ weights (+ bias); weights are [inputs, outputs]."""

    weights: np.ndarray
    bias: np.ndarray | None


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | Fc


def _skip_multipliers(r: DlibReader, layer: str) -> None:
    # Training-only learning-rate and weight-decay multipliers (weights, then bias).
    for what in ("lr", "weight decay", "bias lr", "bias weight decay"):
        r.float_(f"{layer} {what} multiplier")


def read_con(r: DlibReader) -> Conv:
    """Read a con_ record (versions con_4 and con_5)."""
    version = r.string("con_ version")
    if version not in ("con_4", "con_5"):
        raise r.fail(f"expected a con_ layer, found {version!r}")
    params = r.tensor("con_ params").reshape(-1)
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (
        r.int_("con_ geometry") for _ in range(7)
    )
    filt_shape = r.alias("con_ filters")
    bias_shape = r.alias("con_ biases")
    _skip_multipliers(r, "con_")
    # con_4 predates disable_bias(): it always has one.
    use_bias = r.bool_("con_ use_bias") if version == "con_5" else True
    n_filt = math.prod(filt_shape)
    n_bias = num_filters if use_bias else 0
    if (
        filt_shape[0] != num_filters
        or filt_shape[2:] != (nr, nc)
        or (use_bias and bias_shape != (1, num_filters, 1, 1))
        or params.size != n_filt + n_bias
    ):
        raise r.fail(
            f"con_ with {num_filters} {nr}x{nc} filters has inconsistent shapes: "
            f"filters {filt_shape}, biases {bias_shape}, {params.size} params"
        )
    bias = params[n_filt:] if use_bias else np.zeros(num_filters, np.float32)
    return Conv(params[:n_filt].reshape(filt_shape), bias, (stride_y, stride_x), (pad_y, pad_x))


def read_affine(r: DlibReader) -> Affine:
    """Read an affine_ record in conv mode (one gamma and beta per channel)."""
    r.expect_string("affine_", "layer version")
    params = r.tensor("affine_ params").reshape(-1)
    gamma_shape, beta_shape = r.alias("affine_ gamma"), r.alias("affine_ beta")
    mode = r.int_("affine_ mode")
    channels = gamma_shape[1]
    # Mode 0 is CONV_MODE; FC_MODE (1) would need a gamma per element, not per channel.
    if (
        mode != 0
        or gamma_shape != (1, channels, 1, 1)
        or beta_shape != gamma_shape
        or params.size != 2 * channels
    ):
        raise r.fail(
            f"affine_ mode {mode}, gamma {gamma_shape}, beta {beta_shape} and "
            f"{params.size} params are not a per-channel affine"
        )
    return Affine(params[:channels], params[channels:])


def read_pool(r: DlibReader, kind: str) -> Pool:
    """Read a max_pool_ or avg_pool_ record (`kind` "max" or "avg")."""
    r.expect_string(f"{kind}_pool_2", "layer version")
    nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int_(f"{kind}_pool_ geometry") for _ in range(6))
    return Pool(kind, (nr, nc), (stride_y, stride_x), (pad_y, pad_x))


def read_fc(r: DlibReader) -> Fc:
    """Read an fc_ record, with or without bias."""
    r.expect_string("fc_2", "layer version")
    outputs, inputs = r.int_("fc_ num_outputs"), r.int_("fc_ num_inputs")
    params = r.tensor("fc_ params").reshape(-1)
    w_shape, b_shape = r.alias("fc_ weights"), r.alias("fc_ biases")
    bias_mode = r.int_("fc_ bias mode")  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    _skip_multipliers(r, "fc_")
    n_weights = inputs * outputs
    n_bias = outputs if bias_mode == 0 else 0
    if (
        bias_mode not in (0, 1)
        or w_shape != (inputs, outputs, 1, 1)
        or params.size != n_weights + n_bias
    ):
        raise r.fail(
            f"fc_ {inputs}->{outputs} (bias mode {bias_mode}) has inconsistent "
            f"shapes: weights {w_shape}, biases {b_shape}, {params.size} params"
        )
    bias = params[n_weights:] if n_bias else None
    return Fc(params[:n_weights].reshape(inputs, outputs), bias)


def read_add_layer_tail(r: DlibReader, on_input: bool) -> None:
    """Skip add_layer's state after its layer record (flags and scratch tensors)."""
    # this_layer_setup_called, gradient_input_is_stale, get_output_..._disabled; then
    # x_grad, cached_output and params_grad (grad_final on the input side), empty once clean()ed.
    for what in ("setup_called", "gradient_input_is_stale", "output_disabled"):
        r.bool_(f"add_layer {what}")
    for what in ("x_grad", "cached_output", "params_grad"):
        r.tensor(f"add_layer {what}")
    if on_input:
        # Version 3 of the add_layer on the input layer appends its sample_expansion_factor.
        r.int_("add_layer sample_expansion_factor")
