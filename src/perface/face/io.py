"""Safe image reading and writing.

Reading applies EXIF orientation, converts every mode to RGB and refuses decompression bombs,
special files (FIFOs, devices) and multi-frame images (animated GIF/PNG/WebP, multi-page TIFF); every
failure is one :class:`InputError` naming the file and the reason. Writing strips all metadata, encodes in
memory, checks the written size, is atomic (a ``.perface-tmp-<pid>-*`` file, then a link or rename) and
never replaces an existing file unless asked; a write that fails (disk full, read-only) is an
:class:`OutputError`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import tempfile
import time
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


class UnreadableError(InputError):
    """An input file that could not be read as an image (as opposed to an image that was read but refused)."""


class OutputError(PerFaceError):
    """An output could not be written. ``fatal``: every later write would fail too (disk full, read-only)."""

    FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

    def __init__(self, path: str | os.PathLike[str], exc: OSError | str) -> None:
        self.path = str(path)
        self.errno_ = exc.errno if isinstance(exc, OSError) else None
        self.reason = exc if isinstance(exc, str) else (exc.strerror or str(exc))
        self.fatal = self.errno_ in self.FATAL_ERRNOS
        PerFaceError.__init__(self, f"{self.path}: cannot write ({self.reason})")


TEMP_PREFIX = ".perface-tmp-"  # temp files are <TEMP_PREFIX><pid>-<random><suffix>: never taken for outputs
_TEMP_RE = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
STALE_TEMP_SECONDS = 3600.0  # a temp file this old is stale even if its pid is alive again (pid reuse)


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


_SPECIAL = ((stat.S_ISFIFO, "is a named pipe (FIFO), not an image file"),
            (stat.S_ISCHR, "is a character device, not an image file"),
            (stat.S_ISBLK, "is a block device, not an image file"),
            (stat.S_ISSOCK, "is a socket, not an image file"),
            (stat.S_ISDIR, "is a folder, not an image file"))


def _why_unusable(p: Path, mode: int) -> str | None:
    """The reason a file of this ``st_mode`` cannot be an image (None: a regular file)."""
    for test, reason in _SPECIAL:
        if test(mode):
            return reason
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _os_reason(exc: OSError) -> str:
    """A short reason for a failed stat/open, worded for the user."""
    return {errno.ENOENT: "file not found", errno.ELOOP: "symlink loop (the link points back to itself)",
            errno.ENAMETOOLONG: "file name too long for the file system",
            errno.EACCES: "permission denied", errno.ENOTDIR: "a part of the path is not a folder",
            }.get(exc.errno, f"cannot read file ({exc.strerror or exc})")


def check_input_file(path: str | os.PathLike[str]) -> os.stat_result:
    """Stat an input without opening it; :class:`InputError` for missing paths, loops, folders and special files."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(p):
            raise InputError(p, "broken symlink (its target does not exist)") from None
        raise InputError(p, _os_reason(exc)) from None
    why = _why_unusable(p, st.st_mode)
    if why:
        raise InputError(p, why)
    return st


def _open_input(p: Path) -> io.BufferedReader:
    """Open a file for reading without ever blocking (a FIFO swapped in after the stat is refused too)."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(p, _os_reason(exc)) from None
    try:
        why = _why_unusable(p, os.fstat(fd).st_mode)
        if why:
            raise InputError(p, why)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_image(path: str | os.PathLike[str], config: ReadConfig | None = None) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises :class:`UnreadableError` (an :class:`InputError`) for missing, empty, truncated, non-image,
    unsupported, multi-frame, special or too large files; whatever the bytes, nothing else escapes (a decoder's
    own exception becomes one too).
    """
    try:
        return _read_image(Path(path), config or ReadConfig())
    except UnreadableError:
        raise
    except InputError as exc:
        raise UnreadableError(exc.path, exc.reason) from None


def _read_image(p: Path, cfg: ReadConfig) -> np.ndarray:
    if check_input_file(p).st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings(), _open_input(p) as fh:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                w, h = img.size
                if w * h > cfg.max_pixels:
                    raise InputError(
                        p, f"image is {w}x{h} = {w * h:,} pixels, above the limit of {cfg.max_pixels:,}"
                    )
                if w < 1 or h < 1:
                    raise InputError(p, f"image has no pixels ({w}x{h})")
                _refuse_frames(p, img)
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
        msg = _one_line(str(exc))
        if "truncated" in msg.lower() or "broken data stream" in msg.lower():
            raise InputError(p, "image file is truncated or corrupt") from None
        raise InputError(p, f"cannot decode image ({msg})") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's bug on hostile bytes is still bad input, never a crash
        raise InputError(p, f"cannot decode image ({type(exc).__name__}: {_one_line(str(exc))})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(p, f"unsupported image shape {arr.shape}")
    return arr


def _refuse_frames(p: Path, img: Image.Image) -> None:
    """Refuse animations and multi-page files: only the first frame would be anonymized, the rest lost.

    MPO (a camera JPEG with extra preview/depth pictures) is read as its primary picture: the extras are
    copies of the same scene and are never carried to an output."""
    if img.format == "MPO":
        return
    n = int(getattr(img, "n_frames", 1) or 1)
    if n > 1:
        kind = {"GIF": "an animated GIF", "PNG": "an animated PNG (APNG)", "WEBP": "an animated WebP",
                "TIFF": "a multi-page TIFF"}.get(img.format or "", f"a {img.format} file")
        raise InputError(p, f"{kind} with {n} frames; PerFace anonymizes still images only "
                            "(extract the frames to files first, e.g. with ffmpeg)")


def _one_line(text: str) -> str:
    """Collapse a message to one line (error messages must stay one line)."""
    return " ".join(text.split())


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
    if _lexists(p) and not overwrite:
        raise InputError(p, "output file already exists (pass overwrite=True / --overwrite to replace it)")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"write_image expects an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}")
    suffix = p.suffix.lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(suffix)
    if fmt is None:
        raise InputError(p, f"unsupported output format {suffix!r} (use .jpg, .png, .webp or .bmp)")
    # A fresh Image from raw pixels carries no metadata at all. Encoded in memory first: Pillow's encoder
    # writes straight to a file descriptor and takes a short write (full disk) as success.
    buf = io.BytesIO()
    kwargs = {"quality": quality, "optimize": True} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **kwargs)
    write_bytes_atomic(p, buf.getbuffer(), overwrite=overwrite)
    return p


def write_bytes_atomic(path: Path, data: bytes | memoryview, *, overwrite: bool = False,
                       what: str = "output file") -> Path:
    """Write ``data`` to ``path`` atomically, publishing only once the file on disk holds every byte.

    Any failed write (disk full, quota, read-only, I/O error) raises :class:`OutputError`; nothing is left
    under the final name and the temp file is removed."""
    if len(data) == 0:
        raise OutputError(path, "the encoder produced no bytes")
    try:
        with atomic_write(path, overwrite=overwrite, what=what) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                size = os.fstat(fh.fileno()).st_size
            if size != len(data):
                raise OutputError(path, f"short write ({size} of {len(data)} bytes on disk)")
    except OutputError:
        raise
    except InputError:
        raise
    except OSError as exc:
        raise OutputError(path, exc) from None
    return path


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
    if _lexists(p) and not overwrite:
        raise InputError(p, f"{what} already exists (pass overwrite=True / --overwrite to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    # The name carries the pid (so a later run can tell a dead run's leftovers) and never the target's name
    # (a long target name would make the temp name too long).
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=suffix, dir=p.parent)
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
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # A filesystem without hard links: best-effort check, then rename.
        if _lexists(target):
            raise InputError(target, f"{what} already exists") from None
        os.replace(temporary, target)


def default_file_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would give, unlike ``mkstemp``'s 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_file(path: str | os.PathLike[str], *, overwrite: bool = False,
                      suffixes: tuple[str, ...] = (), what: str = "output file") -> None:
    """Refuse, before any work, an output file that exists (unless ``overwrite``), is a folder, has the wrong
    suffix, or whose folder cannot be created or written to."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(p, f"{what} must end in {' or '.join(suffixes)}")
    if _is_dir(p):
        raise InputError(p, f"is a folder; give a file name for the {what}")
    if _lexists(p) and not overwrite:
        raise InputError(p, f"{what} already exists (pass --overwrite to replace it)")
    folder = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a part of the path is a file, not a folder" if isinstance(
            exc, (NotADirectoryError, FileExistsError)) else exc.strerror
        raise InputError(folder, f"cannot create the folder for the {what} ({why})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(folder, f"folder is not writable ({exc.strerror})") from None


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files that a killed run left in ``folder`` (their pid is gone, or they are over an hour old).

    A live run's temp files are left alone, so two runs can share an output folder. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if not m or not e.is_file(follow_symlinks=False):
            continue
        try:
            stale = not _pid_alive(int(m.group(1))) or now - e.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
            if stale:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            continue
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    try:  # a killed process that nobody reaped (a zombie) still answers kill(pid, 0): it is dead all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file name is one of PerFace's temp files (never an input, never an output)."""
    return bool(_TEMP_RE.match(Path(path).name))


def _lexists(p: Path) -> bool:
    """``os.path.lexists`` that never raises (a name too long simply does not exist)."""
    try:
        os.lstat(p)
    except (OSError, ValueError):
        return False
    return True


def _is_dir(p: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(p).st_mode)
    except (OSError, ValueError):
        return False


def _walk_images(folder: Path, recursive: bool) -> list[Path]:
    """Image-named entries of a folder, symlinked folders not followed (no loops); broken links, FIFOs and
    the like are included so that the reader reports them rather than letting them vanish."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not is_temp_file(name):
                found.append(Path(root) / name)
        if not recursive:
            break
    return found


def iter_image_paths(inputs: list[str] | tuple[str, ...], recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into a de-duplicated list of image paths, in the order given.

    A path that exists is taken literally (``face[1].jpg`` is that file, not a pattern); only a path that does
    not exist and contains ``*``, ``?`` or ``[`` is expanded as a glob. Unknown paths are returned as they are,
    so the caller reports them as unreadable; folders are walked without following symlinked folders.
    """
    import glob

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if _is_dir(p):
            out.extend(_walk_images(p, recursive))
        elif not _lexists(p) and any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            out.extend(Path(m) for m in matches if not _is_dir(Path(m)) and not is_temp_file(m))
        else:
            out.append(p)
    seen: set[str] = set()
    unique: list[Path] = []
    for q in out:
        key = real_key(q)
        if key not in seen:
            seen.add(key)
            unique.append(q)
    return unique


def real_key(p: str | os.PathLike[str]) -> str:
    """A path's real location for comparisons; never raises (symlink loops, long names stay as given)."""
    try:
        return os.path.realpath(p)
    except (OSError, ValueError, RuntimeError):
        return os.path.abspath(p)
