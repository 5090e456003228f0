"""ONNX Runtime sessions for PerFace's networks: exported from PyTorch once, verified, cached, built once.

Why: at the small batches of anonymization (one face, its views and mirror images) ONNX Runtime runs these
CNNs 2-15x faster than eager PyTorch on a CPU (``docs/benchmarks.md``), and a cached graph loads without
importing PyTorch, which keeps the start fast. A graph is exported from the PyTorch module at first use,
rewritten so that ONNX Runtime fuses more where that leaves its outputs bit for bit the same
(:mod:`perface.backbones.onnx_rewrite`), checked against PyTorch on a fixed input (a mismatch is never used: the
caller falls back to PyTorch), and written atomically to the user cache folder, keyed by the weights' files and the
graph's version, so every later process (and every worker of a pool) only loads it. Nothing is downloaded.

Environment:

* ``PERFACE_THREADS``: intra-op threads of every session (and of PyTorch when it runs); unset: one thread per
  session (at these batch sizes, with other jobs sharing the 2 cores, one thread ran dlib's net and MobileFaceNet
  twice as fast as two; issue 20 found one as fast as two on a quiet machine); PyTorch keeps its own default.
* ``PERFACE_CACHE_DIR``: where exported graphs live (default ``$XDG_CACHE_HOME/perface`` or
  ``~/.cache/perface``), and the decoded landmark model (:mod:`perface.face.shape_predictor`); an unwritable
  folder falls back to a per-process temporary one.
* ``PERFACE_RUNTIME=torch``: skip ONNX Runtime and run every network in PyTorch (equality checks, debugging).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

THREADS_ENV = "PERFACE_THREADS"
CACHE_ENV = "PERFACE_CACHE_DIR"
RUNTIME_ENV = "PERFACE_RUNTIME"
DEFAULT_THREADS = 1

_LOCK = threading.Lock()
_NETS: dict[str, OnnxNet | None] = {}
_TMP_CACHE: list[Path] = []


def threads() -> int:
    """Intra-op threads of a session: ``$PERFACE_THREADS`` or :data:`DEFAULT_THREADS`."""
    return env_threads() or DEFAULT_THREADS


def env_threads() -> int | None:
    """``$PERFACE_THREADS`` as a number (None when unset)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a whole number of threads, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"{THREADS_ENV} must be >= 1, got {n}")
    return n


def set_torch_threads() -> None:
    """Give PyTorch ``$PERFACE_THREADS`` threads when it is set (called wherever a network runs in PyTorch);
    unset, PyTorch keeps its own default (training and gallery builds use every core)."""
    n = env_threads()
    if n is not None:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def use_onnx() -> bool:
    """Whether networks should run in ONNX Runtime (``PERFACE_RUNTIME`` is not ``torch``)."""
    return os.environ.get(RUNTIME_ENV, "onnx").strip().lower() != "torch"


def session_options() -> Any:
    """ONNX Runtime options shared by every PerFace session: :func:`threads` intra-op threads, quiet logs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def cpu_session(model: str | bytes) -> Any:
    """An ONNX Runtime session on the CPU with :func:`session_options`, from a graph's path or serialized bytes."""
    import onnxruntime as ort

    return ort.InferenceSession(model, sess_options=session_options(), providers=["CPUExecutionProvider"])


def cache_dir() -> Path:
    """The folder for exported graphs (created on demand; a temporary one when it cannot be written)."""
    env = os.environ.get(CACHE_ENV)
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perface"
    d = base / "onnx"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    if not _TMP_CACHE:
        _TMP_CACHE.append(Path(tempfile.mkdtemp(prefix="perface-onnx-")))
        warnings.warn(f"cannot write the ONNX cache {d}; exporting into {_TMP_CACHE[0]} for this process",
                      stacklevel=2)
    return _TMP_CACHE[0]


def files_key(paths: Sequence[str | os.PathLike[str]], *extra: object) -> str:
    """A short key for weights files (path, size, modification time) plus anything else the graph depends on."""
    from perface import __version__

    h = hashlib.sha256(f"perface {__version__}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.fspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    for e in extra:
        h.update(f"|{e!r}".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class OnnxGraph:
    """How to make one network's graph: its cache name and key, and a builder returning the PyTorch module
    with example inputs (a batch of at least 2, so the dynamic batch axis is traced and checked)."""

    name: str
    key: str
    build: Callable[[], tuple[Any, tuple[Any, ...]]]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    atol: float = 1e-4  # allowed max abs difference, relative to max(1, largest output magnitude)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.key}.onnx"


class OnnxNet:
    """A built session: ``net(*arrays)`` returns the graph's outputs (float32 arrays) in declared order."""

    def __init__(self, session: Any, graph: OnnxGraph) -> None:
        self.session = session
        self.graph = graph

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        feed = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(self.graph.inputs, arrays, strict=True)}
        return self.session.run(list(self.graph.outputs), feed)


def onnx_net(graph: OnnxGraph) -> OnnxNet | None:
    """The graph's session, built once per process; None when ONNX Runtime is off or the export failed its check
    (the caller then runs the PyTorch module, with a warning saying why)."""
    if not use_onnx():
        return None
    with _LOCK:
        if graph.filename not in _NETS:
            _NETS[graph.filename] = _build(graph)
        return _NETS[graph.filename]


def _build(graph: OnnxGraph) -> OnnxNet | None:
    path = cache_dir() / graph.filename
    try:
        if not path.is_file():
            export_verified(graph, path)
        return OnnxNet(cpu_session(str(path)), graph)
    except Exception as exc:  # noqa: BLE001 - any export or load problem: run the network in PyTorch instead
        warnings.warn(f"{graph.name}: ONNX Runtime not used ({type(exc).__name__}: {exc}); running PyTorch",
                      stacklevel=3)
        return None


def export_verified(graph: OnnxGraph, path: Path) -> float:
    """Export the graph's PyTorch module to ``path`` (atomically), after checking ONNX Runtime against PyTorch
    on the example inputs and on their first row (batch 1); returns the largest difference found."""
    import torch

    from .onnx_rewrite import rewritten

    set_torch_threads()
    module, example = graph.build()
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{graph.name}-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # exporter deprecation and tracer chatter
            axes = {n: {0: "batch"} for n in (*graph.inputs, *graph.outputs)}
            torch.onnx.export(module, example, str(tmp), dynamo=False, input_names=list(graph.inputs),
                              output_names=list(graph.outputs), dynamic_axes=axes, opset_version=17,
                              do_constant_folding=True)
        batches = [tuple(x[rows] for x in example) for rows in (slice(None), slice(0, 1))]  # all rows, then one
        feeds = [{n: x.numpy() for n, x in zip(graph.inputs, xs, strict=True)} for xs in batches]
        plain = tmp.read_bytes()
        fused = rewritten(plain, feeds)  # clamps and padding fused where no output changes (onnx_rewrite)
        if fused is not plain:
            tmp.write_bytes(fused)
        session = cpu_session(str(tmp))
        worst = 0.0
        for xs, feed in zip(batches, feeds, strict=True):
            with torch.inference_mode():
                ref = module(*xs)
            ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
            got = session.run(list(graph.outputs), feed)
            for name, r, g in zip(graph.outputs, ref, got, strict=True):
                r = r.float().numpy()
                diff = float(np.abs(r - g).max()) if r.size else 0.0
                tol = graph.atol * max(1.0, float(np.abs(r).max()) if r.size else 1.0)
                if not diff <= tol:
                    raise RuntimeError(f"export differs from PyTorch on output {name!r}: max abs diff {diff:.3g} "
                                       f"> {tol:.3g}")
                worst = max(worst, diff)
        tmp.chmod(0o644)
        os.replace(tmp, path)
        return worst
    finally:
        tmp.unlink(missing_ok=True)
