"""Safe image reading and writing.

Reading applies EXIF orientation, converts every mode to RGB and refuses decompression bombs;
every failure is one :class:`InputError` naming the file and the reason. Writing strips all
metadata, is atomic (temp file then rename) and never replaces an existing file unless asked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
DEFAULT_MAX_PIXELS = 64_000_000  # about 8000 x 8000; Pillow's own default warns at 89 M


class PerFaceError(Exception):
    """Base class of every error PerFace raises on purpose."""


class InputError(PerFaceError, ValueError):
    """A user-supplied file could not be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


@dataclass(frozen=True)
class ReadConfig:
    """How images are read. ``max_pixels`` stops decompression bombs before decoding."""

    max_pixels: int = DEFAULT_MAX_PIXELS


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; alpha is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0) if img.mode.startswith("I;16") or hi > 255 else 1.0
        arr8 = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def read_image(path: str | os.PathLike[str], config: ReadConfig | None = None) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises :class:`InputError` for missing, empty, truncated, non-image, unsupported or too large files.
    """
    cfg = config or ReadConfig()
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a folder, not an image file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(p, f"cannot read file ({exc.strerror})") from None
    if size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                if w * h > cfg.max_pixels:
                    raise InputError(
                        p, f"image is {w}x{h} = {w * h:,} pixels, above the limit of {cfg.max_pixels:,}"
                    )
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = _to_rgb(img)
                arr = np.asarray(rgb, dtype=np.uint8).copy()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(p, "not an image, or an unsupported image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(p, "image is too large (decompression bomb guard)") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or "broken data stream" in msg.lower():
            raise InputError(p, "image file is truncated or corrupt") from None
        raise InputError(p, f"cannot decode image ({msg})") from None
    except (ValueError, SyntaxError) as exc:
        raise InputError(p, f"cannot decode image ({exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(p, f"unsupported image shape {arr.shape}")
    return arr


def write_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    overwrite: bool = False,
    quality: int = 92,
) -> Path:
    """Write an RGB array atomically with no metadata (no EXIF, GPS, ICC or comments).

    Refuses to replace an existing file unless ``overwrite`` is true; the format follows the suffix.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError(p, "output file already exists (pass overwrite=True / --overwrite to replace it)")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"write_image expects an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}")
    suffix = p.suffix.lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(suffix)
    if fmt is None:
        raise InputError(p, f"unsupported output format {suffix!r} (use .jpg, .png, .webp or .bmp)")
    # A fresh Image from raw pixels carries no metadata at all.
    clean = Image.fromarray(np.ascontiguousarray(arr))
    with atomic_write(p, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        kwargs = {"quality": quality, "optimize": True} if fmt == "JPEG" else {}
        clean.save(fh, format=fmt, **kwargs)
    return p


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, overwrite: bool = False, suffix: str = ".tmp", what: str = "output file"
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, publish it there atomically.

    The file is fsynced, gets the permissions ``open()`` would give, and replaces an existing ``path``
    only when ``overwrite`` is true (otherwise a hard link makes "create unless it exists" atomic).
    On any error the temporary file is removed and ``path`` is left as it was.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError(p, f"{what} already exists (pass overwrite=True / --overwrite to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())
        publish(tmp, p, overwrite=overwrite, what=what)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish(temporary: Path, target: Path, *, overwrite: bool, what: str = "output file") -> None:
    """Move a finished file into place: ``os.replace`` when overwriting, else a link that fails if it exists."""
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # atomic, and fails if the target appeared meanwhile
    except FileExistsError:
        raise InputError(target, f"{what} already exists") from None
    except OSError:  # a filesystem without hard links: best-effort check, then rename
        if target.exists():
            raise InputError(target, f"{what} already exists") from None
        os.replace(temporary, target)


def default_file_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would give, unlike ``mkstemp``'s 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def iter_image_paths(inputs: list[str] | tuple[str, ...], recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of image paths.

    Unknown paths are returned as they are, so the caller reports them as unreadable.
    """
    import glob

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(q for q in sorted(p.glob(pattern)) if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            out.extend(Path(m) for m in matches if Path(m).is_file())
        else:
            out.append(p)
    seen: set[Path] = set()
    unique: list[Path] = []
    for q in out:
        key = q.resolve() if q.exists() else q
        if key not in seen:
            seen.add(key)
            unique.append(q)
    return unique
