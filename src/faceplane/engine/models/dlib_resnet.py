"""Convert dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to ONNX.

The .dat file is dlib's `serialize(net)` of `anet_type` from dlib's
examples/dnn_face_recognition_ex.cpp. It holds every layer's parameters but not the
wiring: tag and skip layers store no ids. So `_network_definition` restates that type, the
parser checks the file against it record by record, and `build_onnx` replays the resulting
layer list the way dlib's forward pass does.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceplane.engine.models.dlib_serial import (
    AddPrev,
    Affine,
    Conv,
    DlibReader,
    Fc,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
    read_add_layer_tail,
    read_affine,
    read_con,
    read_fc,
    read_pool,
)

if TYPE_CHECKING:
    import onnx

OPSET = 17
# IR 8 is the oldest IR that carries opset 17, so older onnxruntime builds load the model too.
IR_VERSION = 8
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


@dataclass(frozen=True)
class DlibResnet:
    """The parsed network: input normalisation and the layers from input to descriptor."""

    means: np.ndarray  # float32 [3]: R, G, B, subtracted before dividing by 256
    input_size: int
    layers: tuple[Layer, ...]  # bottom (input side) to top (descriptor)
    distance_threshold: float  # loss_metric's same-person distance (0.6 for this model)

    @property
    def descriptor_size(self) -> int:
        """Length of the output descriptor."""
        top = self.layers[-1]
        if not isinstance(top, Fc):
            raise ValueError("network does not end in an fc layer")
        return int(top.weights.shape[1])


# anet_type, bottom to top: (filters, residual blocks, whether the first block downsamples)
# for alevel4 .. alevel0.
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_STEM = (32, 7, 2)  # con<32,7,7,2,2>
_STEM_POOL = (3, 2)  # max_pool<3,3,2,2>
_DESCRIPTOR = 128  # fc_no_bias<128>
_INPUT_SIZE = 150  # input_rgb_image_sized<150>

# (kind, args); args: con (filters, kernel, stride), max_pool/avg_pool (window, stride; window
# 0 = whole map), tag/skip/add_prev (tag id), fc (outputs), affine/relu none.
Spec = tuple[str, tuple[int, ...]]


def _network_definition() -> list[Spec]:
    """anet_type from dnn_face_recognition_ex.cpp, bottom to top, tags and skips included."""
    spec: list[Spec] = [("con", _STEM), ("affine", ()), ("relu", ()), ("max_pool", _STEM_POOL)]
    for filters, count, downsamples in _LEVELS:
        for i in range(count):
            stride = 2 if downsamples and i == 0 else 1
            # block = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,...>>>>>
            block: list[Spec] = [
                ("con", (filters, 3, stride)),
                ("affine", ()),
                ("relu", ()),
                ("con", (filters, 3, 1)),
                ("affine", ()),
            ]
            if stride == 2:
                # ares_down = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<...>>>>>>>
                spec += [
                    ("tag", (1,)),
                    *block,
                    ("tag", (2,)),
                    ("skip", (1,)),
                    ("avg_pool", (2, 2)),
                    ("add_prev", (2,)),
                    ("relu", ()),
                ]
            else:
                # ares = relu<add_prev1<block<tag1<...>>>>
                spec += [("tag", (1,)), *block, ("add_prev", (1,)), ("relu", ())]
    spec += [("avg_pool", (0, 1)), ("fc", (_DESCRIPTOR,))]
    return spec


def _wrapper_version(index: int, kind: str) -> int:
    # Versions dlib writes: tag/skip 1, add_layer 2, and 3 for the add_layer on the input.
    if kind in ("tag", "skip"):
        return 1
    return 3 if index == 0 else 2


def _same_padding(kernel: int, stride: int) -> int:
    # dlib's template default for con_ and pooling: none when strided, else kernel/2.
    return 0 if stride != 1 else kernel // 2


def _read_checked(r: DlibReader, kind: str, args: tuple[int, ...], channels: int) -> Layer:
    """Read one layer record and check it against the network definition."""
    where = r.pos
    layer: Layer
    if kind == "con":
        filters, kernel, stride = args
        layer = read_con(r)
        pad = _same_padding(kernel, stride)
        ok = (
            layer.filters.shape == (filters, channels, kernel, kernel)
            and layer.stride == (stride, stride)
            and layer.padding == (pad, pad)
        )
        found = f"filters {layer.filters.shape}, stride {layer.stride}, padding {layer.padding}"
    elif kind == "affine":
        layer = read_affine(r)
        ok, found = layer.gamma.size == channels, f"{layer.gamma.size} channels"
    elif kind in ("max_pool", "avg_pool"):
        window, stride = args
        pad = _same_padding(window, stride)
        layer = read_pool(r, kind[:3])
        ok = (
            layer.window == (window, window)
            and layer.stride == (stride, stride)
            and layer.padding == (pad, pad)
        )
        found = f"window {layer.window}, stride {layer.stride}, padding {layer.padding}"
    elif kind == "fc":
        layer = read_fc(r)
        ok = layer.weights.shape == (channels, args[0]) and layer.bias is None
        found = f"weights {layer.weights.shape}, bias {layer.bias is not None}"
    else:  # relu, add_prev: a bare version string
        r.expect_string(f"{kind}_", "layer version")
        layer = Relu() if kind == "relu" else AddPrev(args[0])
        ok, found = True, ""
    if not ok:
        raise r.fail(
            f"layer record does not match the network definition: {kind} {args} "
            f"on {channels} channels, found {found}",
            at=where,
        )
    return layer


def _parse(r: DlibReader) -> DlibResnet:
    spec = _network_definition()
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_2", "loss layer version")
    r.float_("loss_metric margin")
    threshold = r.float_("loss_metric distance threshold")
    # Every wrapper writes its version and then its subnet, so all the versions come first,
    # top to bottom, and the layer records follow bottom to top.
    for index in reversed(range(len(spec))):
        kind = spec[index][0]
        r.expect_int(_wrapper_version(index, kind), f"{kind} wrapper version (layer {index})")
    r.expect_string("input_rgb_image_sized", "input layer version")
    means = np.array([r.float_(f"input mean {c}") for c in "RGB"], dtype=np.float32)
    size = (r.int_("input rows"), r.int_("input columns"))
    if size != (_INPUT_SIZE, _INPUT_SIZE) or not np.all(np.isfinite(means)):
        raise r.fail(f"input {size} with means {means}, expected {_INPUT_SIZE}x{_INPUT_SIZE} RGB")

    layers: list[Layer] = []
    channels = 3
    tag_channels: dict[int, int] = {}
    for index, (kind, args) in enumerate(spec):
        if kind == "tag":  # tags and skips write nothing beyond their version
            tag_channels[args[0]] = channels
            layers.append(Tag(args[0]))
            continue
        if kind == "skip":
            channels = tag_channels[args[0]]
            layers.append(Skip(args[0]))
            continue
        layer = _read_checked(r, kind, args, channels)
        if isinstance(layer, Conv | Fc):
            channels = args[0]
        elif isinstance(layer, AddPrev):
            channels = max(channels, tag_channels[layer.tag_id])
        read_add_layer_tail(r, on_input=index == 0)
        layers.append(layer)
    if r.remaining():
        raise r.fail(f"{r.remaining()} unexpected trailing bytes after the last layer")
    return DlibResnet(means, _INPUT_SIZE, tuple(layers), threshold)


def parse_dlib_resnet(path: Path) -> DlibResnet:
    """Parse dlib_face_recognition_resnet_model_v1.dat; ValueError if the file does not fit."""
    return _parse(DlibReader(Path(path).read_bytes(), str(path)))


class _Graph:
    """Accumulates ONNX nodes and initializers under unique, deterministic names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.initializers.append(self._numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(self._helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


Shape = tuple[int, int, int]  # (channels, rows, columns) of one sample


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    # dlib's conv and pooling output size; ONNX's with ceil_mode=0 floors the same way.
    return 1 + (size + 2 * padding - kernel) // stride


def _pad_to(g: _Graph, x: str, shape: Shape, target: Shape) -> str:
    # dlib's tt::add treats elements missing from the smaller tensor as 0: zero padding at the
    # end of the channel, row and column axes.
    extra = [t - s for s, t in zip(shape, target, strict=True)]
    if not any(extra):
        return x
    return g.op("Pad", [x, g.const("pads", np.array([0, 0, 0, 0, 0, *extra], np.int64))])


def _window_op(
    g: _Graph,
    op_type: str,
    x: str,
    inputs: list[str],
    shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    channels: int,
) -> tuple[str, Shape]:
    """Emit a Conv or pooling node and return its output and output shape."""
    x = g.op(
        op_type,
        [x, *inputs],
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=[padding[0], padding[1], padding[0], padding[1]],
    )
    rows = _out_size(shape[1], kernel[0], stride[0], padding[0])
    return x, (channels, rows, _out_size(shape[2], kernel[1], stride[1], padding[1]))


def build_onnx(net: DlibResnet, *, fold_affine: bool = True) -> onnx.ModelProto:
    """Build the ONNX graph: chips [N,150,150,3] RGB 0..255 float32 -> descriptors [N,128]."""
    from onnx import TensorProto, helper

    g = _Graph()
    size = net.input_size
    # dlib's input layer: (pixel - mean[c]) / 256, then NCHW. 1/256 is exact in float32, so
    # the Mul gives the same bits as dlib's division.
    centred = g.op("Sub", [INPUT_NAME, g.const("means", net.means.astype(np.float32))])
    scaled = g.op("Mul", [centred, g.const("inv256", np.array(1 / 256, np.float32))])
    x = g.op("Transpose", [scaled], perm=[0, 3, 1, 2])
    shape: Shape = (3, size, size)
    tags: dict[int, tuple[str, Shape]] = {}
    layers = net.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            w, b = layer.filters.astype(np.float64), layer.bias.astype(np.float64)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if fold_affine and isinstance(nxt, Affine):
                # Fold the following affine into the conv: one op less, rounded once (float64).
                gamma = nxt.gamma.astype(np.float64)
                w, b = w * gamma[:, None, None, None], b * gamma + nxt.beta
                i += 1
            params = [g.const("W", w.astype(np.float32)), g.const("B", b.astype(np.float32))]
            x, shape = _window_op(
                g,
                "Conv",
                x,
                params,
                shape,
                (w.shape[2], w.shape[3]),
                layer.stride,
                layer.padding,
                w.shape[0],
            )
        elif isinstance(layer, Affine):
            x = g.op("Mul", [x, g.const("gamma", layer.gamma.reshape(-1, 1, 1))])
            x = g.op("Add", [x, g.const("beta", layer.beta.reshape(-1, 1, 1))])
        elif isinstance(layer, Relu):
            x = g.op("Relu", [x])
        elif isinstance(layer, Pool) and layer.window == (0, 0):
            x = g.op("GlobalAveragePool" if layer.kind == "avg" else "GlobalMaxPool", [x])
            shape = (shape[0], 1, 1)
        elif isinstance(layer, Pool):
            op_type = "AveragePool" if layer.kind == "avg" else "MaxPool"
            x, shape = _window_op(
                g, op_type, x, [], shape, layer.window, layer.stride, layer.padding, shape[0]
            )
        elif isinstance(layer, Tag):
            tags[layer.tag_id] = (x, shape)
        elif isinstance(layer, Skip):
            x, shape = tags[layer.tag_id]
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[layer.tag_id]
            target: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            x = g.op("Add", [_pad_to(g, x, shape, target), _pad_to(g, other, other_shape, target)])
            shape = target
        else:  # Fc
            x = g.op("MatMul", [g.op("Flatten", [x], axis=1), g.const("fc_W", layer.weights)])
            if layer.bias is not None:
                x = g.op("Add", [x, g.const("fc_B", layer.bias)])
        i += 1
    g.op("Identity", [x], out=OUTPUT_NAME)
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", net.descriptor_size])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceplane.dlib_resnet"
    )
    model.ir_version = IR_VERSION
    threshold = str(np.float32(net.distance_threshold))  # dlib stores a float: "0.6"
    model.doc_string = (
        "dlib face-recognition ResNet v1: RGB 150x150 face chips (0..255) in, "
        "raw dlib descriptors out; same person when the euclidean distance "
        f"is below {threshold}."
    )
    helper.set_model_props(model, {"distance_threshold": threshold})
    return model


def convert_dlib_resnet(dat_path: Path, onnx_path: Path) -> str:
    """Convert a dlib ResNet .dat into a checked ONNX file; return the file's sha256 hex."""
    import onnx

    model = build_onnx(parse_dlib_resnet(dat_path))
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: readers never see a half-written model.
    fd, tmp = tempfile.mkstemp(prefix=f".{onnx_path.name}.", dir=onnx_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a model file is meant to be readable
        os.replace(tmp, onnx_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()
