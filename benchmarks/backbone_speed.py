"""Throughput of PerFace's PyTorch dlib ResNet vs dlib's own ``compute_face_descriptor``.

CPU mode (default): faces/s of the torch port at batch 1 and batch 64 (fp32), of dlib on a batched list of
chips, and of the ONNX export under onnxruntime (when ``onnx`` is installed). ``--gpu``: faces/s on CUDA at
batch 256 in fp32 (TF32 off), TF32 and bf16 autocast, and the cosine of each against CPU fp32 descriptors.
Chips are the bundled tests/data/chips, cycled (speed does not depend on content). Prints a markdown table
and writes it to docs/benchmarks/backbones.md.

    python benchmarks/backbone_speed.py [--n1 32] [--n64 256] [--dlib-n 128] [--no-onnx]
    python benchmarks/backbone_speed.py --gpu [--gpu-batches 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from backbone_common import bundled_chips, load_average, machine_info, write_section


def _rate(fn: Callable[[], object], n_faces: int, sync: Callable[[], None] = lambda: None) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return n_faces / (time.perf_counter() - t0)


def cpu(args: argparse.Namespace) -> str:
    import dlib
    import torch

    from perface.backbones import embed_chips, load_backbone
    from perface.backbones.dlib_dat import default_dat_path

    model = load_backbone("dlib-resnet")
    load_start = load_average()
    rows = []
    chips1 = bundled_chips(args.n1)
    embed_chips(model, chips1[:2], batch_size=1)  # warm-up
    r = _rate(lambda: embed_chips(model, chips1, batch_size=1), args.n1)
    rows.append(("PerFace torch fp32", 1, args.n1, r))
    chips64 = bundled_chips(args.n64)
    embed_chips(model, chips64[:64], batch_size=64)
    r = _rate(lambda: embed_chips(model, chips64, batch_size=64), args.n64)
    rows.append(("PerFace torch fp32", 64, args.n64, r))
    fused = model.fused()
    label = "PerFace torch fp32, `fused()` (affine folded, channels-last)"
    embed_chips(fused, chips1[:2], batch_size=1)
    rows.append((label, 1, args.n1, _rate(lambda: embed_chips(fused, chips1, batch_size=1), args.n1)))
    embed_chips(fused, chips64[:64], batch_size=64)
    rows.append((label, 64, args.n64, _rate(lambda: embed_chips(fused, chips64, batch_size=64), args.n64)))

    if not args.no_onnx:
        try:
            import onnxruntime as ort

            from perface.backbones.export import export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                rep = export_onnx("dlib-resnet", Path(tmp) / "dlib.onnx")
                sess = ort.InferenceSession(rep["path"], providers=["CPUExecutionProvider"])
                x = model.preprocess(chips64).numpy()
                sess.run(None, {"input": x[:64]})

                def run_ort() -> None:
                    for i in range(0, len(x), 64):
                        sess.run(None, {"input": x[i : i + 64]})

                rows.append(("ONNX export, onnxruntime CPU", 64, args.n64, _rate(run_ort, args.n64)))
        except ImportError as e:
            print("skipping onnxruntime:", e)

    fr = dlib.face_recognition_model_v1(str(default_dat_path()))
    chips_d = list(bundled_chips(args.dlib_n))
    fr.compute_face_descriptor(chips_d[:2])
    r = _rate(lambda: fr.compute_face_descriptor(chips_d), args.dlib_n)
    rows.append((f"dlib {dlib.__version__} `compute_face_descriptor(list)`", "list", args.dlib_n, r))

    table = "\n".join(f"| {name} | {bs} | {n} | {fps:.1f} |" for name, bs, n, fps in rows)
    return f"""### dlib ResNet port: CPU speed (`benchmarks/backbone_speed.py`)

{machine_info()}; torch threads {torch.get_num_threads()}. The 2 cores were shared with other jobs during
the run (1-min load average {load_start} at the start, {load_average()} at the end), so absolute numbers
are noisy lower bounds, batch 1 especially; compare rows of one run.

| implementation | batch | faces | faces/s |
|---|---:|---:|---:|
{table}
"""


def gpu(args: argparse.Namespace) -> str:
    import torch

    from perface.backbones import embed_chips, load_backbone

    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    bs = args.gpu_bs
    chips = bundled_chips(bs)
    ref = embed_chips(load_backbone("dlib-resnet"), chips)  # CPU fp32 reference
    plain = load_backbone("dlib-resnet", device=dev)
    fused = plain.fused(channels_last=True)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    rows, bf16_rates = [], []

    def measure(label: str, model, tf32: bool, dtype, batch: int = bs, end_to_end: bool = False) -> None:
        cb = bundled_chips(batch)
        x = model.preprocess(cb)
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        amp = torch.autocast(dev.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None)

        def run(n: int = args.gpu_batches) -> torch.Tensor:
            with torch.inference_mode(), amp:
                for _ in range(n):
                    # end to end: uint8 chips on the host -> copy, normalise, embed -> descriptors on the host
                    y = model(model.preprocess(cb)).float().cpu() if end_to_end else model(x)
            return y

        run(3)  # warm-up (cuDNN autotuning, allocator, compilation)
        fps = _rate(run, batch * args.gpu_batches, sync)
        y = run(1).float().cpu().numpy()[:bs]
        cos = (y * ref).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref, axis=1)
        if dtype is not None:
            bf16_rates.append(fps)
        rows.append(f"| {label} | {batch} | {fps:,.0f} | {cos.min():.6f} | {cos.mean():.6f} | "
                    f"{np.abs(y - ref).max():.2e} |")
        print(rows[-1], flush=True)

    measure("fp32 (TF32 off)", plain, False, None)
    measure("TF32", plain, True, None)
    measure("bf16 autocast", plain, False, torch.bfloat16)
    measure("bf16 autocast, `fused()` channels-last", fused, False, torch.bfloat16)
    measure("bf16 autocast, `fused()` channels-last, end to end from uint8 chips on the host", fused, False,
            torch.bfloat16, end_to_end=True)
    measure("bf16 autocast, `fused()` channels-last", fused, False, torch.bfloat16, batch=4 * bs)
    if args.compile:
        try:
            compiled = torch.compile(fused)
            measure("bf16 autocast, `fused()` channels-last, `torch.compile`", compiled, False, torch.bfloat16)
        except Exception as exc:  # report, do not lose the other rows
            rows.append(f"| `torch.compile` failed: {type(exc).__name__}: {str(exc)[:120]} | | | | | |")
    table = "\n".join(rows)
    best = max(bf16_rates)
    verdict = "met" if best >= 20000 else "not met"
    return f"""### dlib ResNet port: GPU speed (`benchmarks/backbone_speed.py --gpu`)

{machine_info()}. {args.gpu_batches} batches per row after 3 warm-up batches (bundled chips, cycled); the
input tensor is already on the GPU except in the end-to-end row; cosine and max abs diff against CPU fp32
descriptors of the same chips.

| precision | batch | faces/s | cosine min vs CPU fp32 | cosine mean | max abs diff |
|---|---:|---:|---:|---:|---:|
{table}

Goal >= 20,000 faces/s in bf16 on an H100: best bf16 row {best:,.0f} faces/s, {verdict} on this card.
bf16 cosine to fp32 >= 0.999 is checked by the cosine columns.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=32, help="faces timed at batch 1")
    ap.add_argument("--n64", type=int, default=256, help="faces timed at batch 64")
    ap.add_argument("--dlib-n", type=int, default=128, help="faces timed with dlib")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime row")
    ap.add_argument("--gpu", action="store_true", help="measure on CUDA instead")
    ap.add_argument("--gpu-batches", type=int, default=20)
    ap.add_argument("--gpu-bs", type=int, default=256, help="batch size for --gpu")
    ap.add_argument("--compile", action="store_true", help="with --gpu, also time a torch.compile row")
    ap.add_argument("--device", default="cuda", help="device for --gpu (cpu only to smoke-test the code)")
    args = ap.parse_args()
    md = gpu(args) if args.gpu else cpu(args)
    print(md)
    if args.gpu and not args.device.startswith("cuda"):
        return  # smoke test: do not overwrite the GPU table
    print("written to", write_section("backbone_speed_gpu" if args.gpu else "backbone_speed_cpu", md))


if __name__ == "__main__":
    main()
