"""Issue 17's throughput: what decides how many swaps a face needs, the donor or the face?

``run``: the defaults on 120 photos (the 30 speed photos, then 90 CelebA photos, 45 each with seeds 0 and 3, as the
equivalence checks of the deferred identity checks used), logging every swap checked: the donor's pre-swap scores
against the face for each consulted network, and the outcome (kept as identity-safe, or which check refused it and
by how much). Writes runs/donor_tries/tries.json (about a minute on 2 cores).
``report``: refusals by check, the share of tries spent on faces every donor failed for, and whether some donors pass
more often than others (chi-square of per-donor pass counts against one common rate: about its degrees of freedom
means the donor does not matter beyond chance).
"""

from __future__ import annotations

import collections
import csv
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, celeba_at_640, shared_data  # noqa: E402

RUNS = REPO / "runs" / "donor_tries"


def run() -> None:
    """Every checked swap of the 120 photos, with its donor's scores and its outcome."""
    from perface.anonymize import anonymizer as A
    from perface.anonymize.select import SelectConfig
    from perface.face.io import read_image

    photos, _ = celeba_at_640(30, start=100)
    root = shared_data() / "celeba"
    rows = list(csv.DictReader((root / "labels.csv").read_text().splitlines()))
    celeba = [root / "images" / r["image"] for r in rows[400:490]]
    log: list[dict] = []
    current = {"photo": ""}
    original = A.Anonymizer._swap_and_check

    def logged(self, out, face, target, donor_id, psim, gap, soft_only=False):  # noqa: ANN001, ANN202
        entry = {"photo": current["photo"], "face": id(target), "donor": donor_id}
        for name in self.recognizers:
            entry[name] = self._donor_score(target, name, donor_id)
            entry[name + "_eer"] = self.recognizers[name].threshold("eer")
        swap, reason, hopeless = original(self, out, face, target, donor_id, psim, gap, soft_only)
        entry["kind"], entry["reason"] = type(swap).__name__, reason
        if isinstance(swap, A._Refused):
            entry["excess"] = swap.excess
        log.append(entry)
        return swap, reason, hopeless

    A.Anonymizer._swap_and_check = logged
    for seed, paths in ((0, photos), (0, celeba[:45]), (3, celeba[45:])):
        an = A.Anonymizer(A.AnonymizeConfig(select=SelectConfig(seed=seed, group_by="hybrid")))
        for p in paths:
            current["photo"] = p.name
            an.anonymize_array(read_image(p))
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "tries.json").write_text(json.dumps(log))
    print(f"{len(log)} swaps logged")


def report() -> None:
    """Refusals by check, tries on faces no donor passed, per-donor dispersion (module docstring)."""
    log = json.loads((RUNS / "tries.json").read_text())
    print(f"{len(log)} swaps tried")
    for reason, n in collections.Counter(re.sub(r" \(.*", "", x["reason"]) or "identity-safe"
                                         for x in log).most_common():
        print(f"  {n:4d} {reason}")
    faces: dict[tuple, list[dict]] = collections.defaultdict(list)
    for x in log:
        faces[(x["photo"], x["face"])].append(x)
    hopeless = [v for v in faces.values() if not any(x["kind"] == "_Swap" for x in v)]
    print(f"{len(faces)} faces; {len(hopeless)} had every donor refused, with {sum(map(len, hopeless))} tries "
          f"({sum(map(len, hopeless)) / len(log):.0%} of all)")
    by_donor: dict[str, list[bool]] = collections.defaultdict(list)
    for x in log:
        if x["kind"] in ("_Swap", "_Refused"):
            by_donor[x["donor"]].append(x["kind"] == "_Swap")
    n = np.array([len(v) for v in by_donor.values()])
    k = np.array([sum(v) for v in by_donor.values()])
    p = k.sum() / n.sum()
    chi2 = float(((k - n * p) ** 2 / (n * p * (1 - p))).sum())
    print(f"{n.sum()} swaps checked with {len(n)} donors, pass rate {p:.3f}; per-donor chi-square {chi2:.1f} on "
          f"{len(n) - 1} degrees of freedom (p about {_chi2_sf(chi2, len(n) - 1):.2f})")


def _chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (Wilson-Hilferty normal approximation; enough for a screen)."""
    z = ((x / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("run", "report"):
        run() if sys.argv[1] == "run" else report()
    else:
        raise SystemExit(__doc__)
