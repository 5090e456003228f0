"""Triplet judgments: "which of `a` and `b` is more similar to the reference?".

Every dataset in :mod:`perface.datasets` is converted into this one abstraction. A
:class:`Triplet` keeps the raw vote counts (not just the winner), so the two training sets of the
PerFace paper can be derived from the same data: D1 keeps every triplet labelled by its majority
and D2 keeps only the unanimous ones. :class:`TripletSet` adds the splits used for evaluation:
a random split at triplet level and the paper's identity-based settings (Sec. 4.4):

* ``"i"``: neither the target nor the source identities of a test triplet occur in training;
* ``"ii"``: the target is unseen in training but every source is seen;
* ``"iii"``: the sources are unseen in training but the target is seen.

In SimCelebA each face is a face swap: the *target* supplies the hair, contour and skin tone and a
*source* supplies the inner face, so a triplet has one target and three sources (one per image).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np

__all__ = ["IdentityMode", "Triplet", "TripletSet"]

IdentityMode = Literal["i", "ii", "iii"]


@dataclass(frozen=True)
class Triplet:
    """One similarity judgment: which of `a` or `b` is more similar to `reference`.

    ``votes_a`` / ``votes_b`` count the judges (or, for rating-derived triplets, the bootstrap
    resamples) that chose each side. ``target_id`` and ``source_ids`` identify the people behind a
    face-swapped triplet; ``source_ids`` is ordered like the images: ``(reference, a, b)``.
    ``weight`` is a per-triplet training weight (1 unless the source supplies one).
    """

    id: str
    reference: Path
    a: Path
    b: Path
    votes_a: int
    votes_b: int
    target_id: str | None = None
    source_ids: tuple[str, ...] | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        for field in ("reference", "a", "b"):
            if not isinstance(getattr(self, field), Path):
                object.__setattr__(self, field, Path(getattr(self, field)))
        if not self.id:
            raise ValueError("Triplet id must be a non-empty string")
        for field in ("votes_a", "votes_b"):
            value = getattr(self, field)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"Triplet {self.id}: {field} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, field, int(value))
        if self.votes_a + self.votes_b == 0:
            raise ValueError(f"Triplet {self.id}: needs at least one vote")
        if self.source_ids is not None:
            object.__setattr__(self, "source_ids", tuple(str(s) for s in self.source_ids))
        if self.target_id is not None:
            object.__setattr__(self, "target_id", str(self.target_id))
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"Triplet {self.id}: weight must be finite and >= 0, got {self.weight!r}")

    @property
    def n_votes(self) -> int:
        """Total number of votes."""
        return self.votes_a + self.votes_b

    @property
    def tie(self) -> bool:
        """True when neither side has a majority."""
        return self.votes_a == self.votes_b

    @property
    def positive(self) -> Path:
        """The image chosen by the majority as more similar to the reference (`a` on a tie)."""
        return self.a if self.votes_a >= self.votes_b else self.b

    @property
    def negative(self) -> Path:
        """The other image (chosen by the minority)."""
        return self.b if self.votes_a >= self.votes_b else self.a

    @property
    def agreement(self) -> float:
        """Share of votes on the majority side, in [0.5, 1]."""
        return max(self.votes_a, self.votes_b) / self.n_votes

    @property
    def unanimous(self) -> bool:
        """True when every vote went to the same side."""
        return self.votes_a == 0 or self.votes_b == 0


class TripletSet(Sequence[Triplet]):
    """An immutable, named sequence of :class:`Triplet` with unique ids."""

    def __init__(self, triplets: Iterable[Triplet], name: str = "triplets") -> None:
        self._triplets: tuple[Triplet, ...] = tuple(triplets)
        self._name = name
        seen: set[str] = set()
        for t in self._triplets:
            if not isinstance(t, Triplet):
                raise TypeError(f"TripletSet {name!r}: expected Triplet, got {type(t).__name__}")
            if t.id in seen:
                raise ValueError(f"TripletSet {name!r}: duplicate triplet id {t.id!r}")
            seen.add(t.id)

    @property
    def name(self) -> str:
        """A label for logs and reports, e.g. ``"SimCelebA-D2-test"``."""
        return self._name

    @property
    def triplets(self) -> tuple[Triplet, ...]:
        """The triplets as a tuple."""
        return self._triplets

    def __len__(self) -> int:
        return len(self._triplets)

    @overload
    def __getitem__(self, index: int) -> Triplet: ...

    @overload
    def __getitem__(self, index: slice) -> TripletSet: ...

    def __getitem__(self, index: int | slice) -> Triplet | TripletSet:
        if isinstance(index, slice):
            return TripletSet(self._triplets[index], self._name)
        return self._triplets[index]

    def __iter__(self) -> Iterator[Triplet]:
        return iter(self._triplets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TripletSet):
            return NotImplemented
        return self._name == other._name and self._triplets == other._triplets

    def __hash__(self) -> int:
        return hash((self._name, self._triplets))

    def __repr__(self) -> str:
        return f"TripletSet(name={self._name!r}, n={len(self)})"

    # -- subsets -------------------------------------------------------------------------------

    def filter(self, keep: Callable[[Triplet], bool], name: str | None = None) -> TripletSet:
        """The triplets for which `keep` is true, in order."""
        return TripletSet((t for t in self._triplets if keep(t)), name or self._name)

    def d1(self) -> TripletSet:
        """D1: every triplet with a majority, labelled by it (ties, impossible with 3 votes, are dropped)."""
        return self.filter(lambda t: not t.tie, f"{self._name}-D1")

    def d2(self) -> TripletSet:
        """D2: only the triplets on which every vote agrees (the paper's evaluation data)."""
        return self.filter(lambda t: t.unanimous, f"{self._name}-D2")

    def image_paths(self) -> list[Path]:
        """Every distinct image path, sorted."""
        return sorted({p for t in self._triplets for p in (t.reference, t.a, t.b)})

    # -- splits --------------------------------------------------------------------------------

    def split_random(
        self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> dict[str, TripletSet]:
        """Split at triplet level into ``train``/``val``/``test`` (or ``train``/``test`` for 2 fractions).

        Deterministic for a given seed; each part keeps the original order. Faces can recur across
        parts, which matches the paper's setting [ii] only loosely; use :meth:`split_by_identity`
        when identities are known.
        """
        fr = [float(f) for f in fractions]
        if len(fr) not in (2, 3) or any(f < 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
            raise ValueError(f"fractions must be 2 or 3 non-negative numbers summing to 1, got {fractions!r}")
        names = ("train", "test") if len(fr) == 2 else ("train", "val", "test")
        order = np.random.default_rng(seed).permutation(len(self))
        bounds = np.rint(np.cumsum([0.0, *fr]) * len(self)).astype(int)
        bounds[-1] = len(self)
        return {
            part: TripletSet(
                (self._triplets[i] for i in sorted(order[bounds[k] : bounds[k + 1]])), f"{self._name}-{part}"
            )
            for k, part in enumerate(names)
        }

    def split_by_identity(
        self, mode: IdentityMode | str, seed: int = 0, fraction: float = 0.2, val_fraction: float = 0.0
    ) -> dict[str, TripletSet]:
        """Split by identity following the paper's settings [i], [ii] and [iii].

        A share `fraction` of the target identities (modes i, ii) and/or of the source identities
        (modes i, iii) is held out for ``test``; `val_fraction` > 0 holds out a further, disjoint
        share for ``val``. Sources are held out a whole source group at a time (the set of sources
        of one triplet; in SimCelebA each group of three sources is crossed with every target), so
        that held-out groups give complete test triplets. Then:

        * ``train`` has no held-out identity of the relevant kind(s);
        * ``test`` (``val``) triplets have their target (mode i, ii) and/or all their sources
          (mode i, iii) in the held-out set, and for mode ii every source, for mode iii the target,
          occurs in ``train``.

        Triplets that fit no part (e.g. a held-out target with seen sources in mode i) are dropped.
        Raises ValueError when identities are missing or when no test triplet remains.
        """
        m = str(mode).strip().strip("[]").lower()
        if m not in ("i", "ii", "iii"):
            raise ValueError(f"mode must be 'i', 'ii' or 'iii', got {mode!r}")
        for value, label in ((fraction, "fraction"), (val_fraction, "val_fraction")):
            if not 0 <= value < 1:
                raise ValueError(f"{label} must be in [0, 1), got {value!r}")
        if fraction <= 0 or fraction + val_fraction >= 1:
            raise ValueError(
                f"need 0 < fraction and fraction + val_fraction < 1, got {fraction}, {val_fraction}"
            )
        use_targets = m in ("i", "ii")
        use_sources = m in ("i", "iii")
        self._require_ids(m, use_targets, use_sources)

        rng = np.random.default_rng(seed)
        parts = ("test", "val") if val_fraction > 0 else ("test",)
        shares = {"test": fraction, "val": val_fraction}
        held_t: dict[str, set[str]] = {p: set() for p in parts}
        held_s: dict[str, set[str]] = {p: set() for p in parts}
        if use_targets:
            targets = sorted({t.target_id for t in self._triplets if t.target_id is not None})
            order = [targets[i] for i in rng.permutation(len(targets))]
            start = 0
            for p in parts:
                n = max(1, round(shares[p] * len(targets)))
                held_t[p] = set(order[start : start + n])
                start += n
        if use_sources:
            held_s = _hold_out_source_groups(self._triplets, parts, shares, rng)

        all_t = set().union(*held_t.values())
        all_s = set().union(*held_s.values())

        def in_train(t: Triplet) -> bool:
            return (not use_targets or t.target_id not in all_t) and (
                not use_sources or all_s.isdisjoint(t.source_ids or ())
            )

        train = [t for t in self._triplets if in_train(t)]
        seen_t = {t.target_id for t in train}
        seen_s = {s for t in train for s in (t.source_ids or ())}

        def in_part(t: Triplet, p: str) -> bool:
            sources = set(t.source_ids or ())
            if m == "i":
                return t.target_id in held_t[p] and sources <= held_s[p]
            if m == "ii":
                return t.target_id in held_t[p] and sources <= seen_s
            return sources <= held_s[p] and t.target_id in seen_t

        out = {"train": TripletSet(train, f"{self._name}-{m}-train")}
        for p in parts:
            out[p] = TripletSet((t for t in self._triplets if in_part(t, p)), f"{self._name}-{m}-{p}")
        if len(out["test"]) == 0:
            raise ValueError(
                f"split_by_identity(mode={m!r}) on {self._name!r}: no test triplet satisfies the condition; "
                "try a larger fraction or another seed"
            )
        return {k: out[k] for k in ("train", "val", "test") if k in out}

    def _require_ids(self, mode: str, targets: bool, sources: bool) -> None:
        """Raise a clear ValueError when the identities needed by `mode` are missing."""
        need = [
            (targets, "target_id", sum(t.target_id is None for t in self._triplets)),
            (sources, "source_ids", sum(not t.source_ids for t in self._triplets)),
        ]
        for needed, field, missing in need:
            if needed and (missing or not self._triplets):
                raise ValueError(
                    f"split_by_identity(mode={mode!r}) needs {field} on every triplet, but {missing} of "
                    f"{len(self)} triplets in {self._name!r} lack it (for SimCelebA, pass an identity map "
                    "to load_simceleba)"
                )


def _hold_out_source_groups(
    triplets: Sequence[Triplet], parts: Sequence[str], shares: dict[str, float], rng: np.random.Generator
) -> dict[str, set[str]]:
    """Hold out whole source groups until each part has its share of the distinct sources."""
    groups = sorted({tuple(sorted(set(t.source_ids or ()))) for t in triplets})
    n_sources = len({s for g in groups for s in g})
    held: dict[str, set[str]] = {p: set() for p in parts}
    order = rng.permutation(len(groups))
    for p in parts:
        goal = max(1, round(shares[p] * n_sources))
        others = set().union(*(held[q] for q in parts if q != p))
        for gi in order:
            if len(held[p]) >= goal:
                break
            group = set(groups[gi])
            if group.isdisjoint(others) and not group <= held[p]:
                held[p] |= group
    return held
