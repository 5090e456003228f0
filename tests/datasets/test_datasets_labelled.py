"""Tests for perface.datasets.labelled: UTKFace file names and CelebA labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from perface.datasets import (
    DatasetError,
    DatasetWarning,
    LabelledFace,
    load_celeba,
    load_utkface,
    parse_utkface_name,
)

CELEBA_ATTRS = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]


def test_parse_utkface_names() -> None:
    f = parse_utkface_name("25_0_2_20170116174525125.jpg.chip.jpg")
    assert f == LabelledFace(Path("25_0_2_20170116174525125.jpg.chip.jpg"), "male", 25, True, None)
    g = parse_utkface_name(Path("d/40_1_0_20170110183726390.jpg.chip.jpg"))
    assert g is not None and g.gender == "female" and g.age == 40 and not g.young
    assert parse_utkface_name("39_1_4_20170110183726390.jpg").young  # in-the-wild naming
    for bad in (
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_3_20170109150557335.jpg.chip.jpg",
        "x_0_1_2.jpg",
        "25_2_0_20170116174525125.jpg.chip.jpg",
    ):
        assert parse_utkface_name(bad) is None, bad


def test_load_utkface_counts_malformed(tmp_path: Path) -> None:
    names = [
        "100_1_0_20170110183726390.jpg.chip.jpg",
        "10_0_0_20170103200522151.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_3_20170109150557335.jpg.chip.jpg",
    ]
    (tmp_path / "images").mkdir()
    for n in names:
        (tmp_path / "images" / n).write_bytes(b"jpg")
    with pytest.warns(DatasetWarning, match="skipped 2 file") as rec:
        faces = load_utkface(tmp_path)
    assert (
        len(rec) == 1
        and [f.age for f in faces] == [100, 10]
        and [f.gender for f in faces] == ["female", "male"]
    )
    with pytest.raises(DatasetError):
        load_utkface(tmp_path / "missing")


def _celeba(root: Path, rows: list[tuple[str, str, dict[str, str]]]) -> Path:
    lines = [",".join(["image", "identity", *CELEBA_ATTRS])]
    for image, identity, flags in rows:
        lines.append(",".join([image, identity, *(flags.get(a, "-1") for a in CELEBA_ATTRS)]))
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_load_celeba(tmp_path: Path) -> None:
    root = _celeba(
        tmp_path,
        [
            ("000001.jpg", "7343", {"Male": "1", "Young": "1"}),
            ("000002.jpg", "12", {"Young": "-1"}),
            ("000003.jpg", "12", {"Male": "1"}),
        ],
    )
    for n in ("000001.jpg", "000002.jpg"):
        (root / "images" / n).write_bytes(b"jpg")
    with pytest.warns(DatasetWarning, match="skipped 1 row"):
        faces = load_celeba(root)
    assert faces == [
        LabelledFace(root / "images" / "000001.jpg", "male", None, True, "7343"),
        LabelledFace(root / "images" / "000002.jpg", "female", None, False, "12"),
    ]


def test_celeba_errors(tmp_path: Path) -> None:
    root = _celeba(tmp_path, [("000001.jpg", "1", {"Male": "0"})])
    with pytest.raises(DatasetError, match="Male must be"):
        load_celeba(root)
    (root / "labels.csv").write_text("image,identity,Young\n1.jpg,1,1\n")
    with pytest.raises(DatasetError, match="lacks column"):
        load_celeba(root)
    with pytest.raises(DatasetError, match="not found"):
        load_celeba(tmp_path / "none")


@pytest.mark.shared
def test_real_utkface_and_celeba(shared_data: Path) -> None:
    with pytest.warns(DatasetWarning, match="skipped 2 file"):
        utk = load_utkface(shared_data / "utkface")
    assert len(utk) == 4888 and {f.gender for f in utk} == {"male", "female"}
    celeba = load_celeba(shared_data / "celeba")
    assert len(celeba) == 3206 and len({f.identity for f in celeba}) == 150
    print(
        f"UTKFace {len(utk)} faces ({sum(f.young for f in utk)} young); CelebA {len(celeba)} faces "
        f"({sum(f.gender == 'male' for f in celeba)} male)"
    )
