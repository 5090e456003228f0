"""What round 44's reference check costs in process: the default against ``--reference-check none`` (issue 17).

Why: whole commands (``speed_pairs.py``) move by about 0.7 s between rounds, more than a change to this check saves.
In one process, on the 30 speed photos (640 px, one face), both configurations run alternately; prints each one's
seconds, the reference detector's passes (count and seconds) and the swaps tried, which must be equal when the check
only moves work. Usage: ``python benchmarks/studies/reference_passes.py --rounds 2`` (about 2.5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import celeba_at_640  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from perface.anonymize import anonymizer as A
    from perface.face.io import read_image

    photos, _ = celeba_at_640(30, start=100)
    images = [read_image(p) for p in photos]
    runs = {"default": A.Anonymizer(A.AnonymizeConfig()), "none": A.Anonymizer(A.AnonymizeConfig(reference_check=()))}
    passes: collections.Counter[str] = collections.Counter()
    pass_s: collections.Counter[str] = collections.Counter()
    swaps: collections.Counter[str] = collections.Counter()
    current = ["default"]
    found_around, swap_and_check = A.Anonymizer._found_around, A.Anonymizer._swap_and_check

    def counted_found_around(self, image, face, reference=False):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return found_around(self, image, face, reference)
        finally:
            if reference:
                passes[current[0]] += 1
                pass_s[current[0]] += time.perf_counter() - t0

    def counted_swap(self, *a, **k):  # type: ignore[no-untyped-def]
        swaps[current[0]] += 1
        return swap_and_check(self, *a, **k)

    A.Anonymizer._found_around, A.Anonymizer._swap_and_check = counted_found_around, counted_swap
    for an in runs.values():  # models loaded and warm before any timing
        an.anonymize_array(images[0])
    passes.clear(), pass_s.clear(), swaps.clear()
    seconds: collections.Counter[str] = collections.Counter()
    for r in range(args.rounds):
        for name in (("default", "none") if r % 2 == 0 else ("none", "default")):
            current[0] = name
            t0 = time.perf_counter()
            for image in images:
                runs[name].anonymize_array(image)
            seconds[name] += time.perf_counter() - t0
    n = args.rounds
    for name in runs:
        print(f"{name}: {seconds[name] / n:.2f} s for {len(images)} photos, reference passes {passes[name] // n} "
              f"({pass_s[name] / n:.2f} s), swaps tried {swaps[name] // n}")


if __name__ == "__main__":
    main()
