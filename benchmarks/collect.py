"""Assemble docs/benchmarks.md from the fragments the benchmark scripts write to docs/benchmarks/."""

from __future__ import annotations

from _common import FRAGMENTS, REPO

ORDER = ["summary", "detection", "recall", "detect_alignment", "yaw_guard",
         "celeba_pairs", "recognizers", "recognizer_sizes", "pipeline", "detect_speed", "backbones", "model",
         "model_cv", "model_speed", "groups", "group_ceilings", "metric_signals", "metric_label_triplets",
         "metric_gender_first", "swapped_standin", "attributes", "attribute_networks",
         "gallery", "swap", "anonymity", "anonymity_tuning", "anonymity_residue", "anonymity_tries", "anonymity_soften",
         "anonymity_judge",
         "anonymity_donor_clarity",
         "lbph_regions", "lbph_floor",
         "anonymize_speed", "gpu_machine", "shape_predictor", "runtime_equality", "threads",
         "folder_memory", "folder_memory_swap", "annotation_load", "annotation_e2e"]


def main() -> None:
    parts = ["# Benchmarks\n",
             "Every figure below was measured by the script named in its section, on the machine and date it gives.\n"
             "Regenerate a section by running its script (`python benchmarks/<name>.py`; one-off studies live in "
             "`benchmarks/studies/`, see its README), then "
             "`python benchmarks/collect.py`.\n"]
    names = [n for n in ORDER if (FRAGMENTS / f"{n}.md").exists()]
    names += sorted(p.stem for p in FRAGMENTS.glob("*.md") if p.stem not in ORDER)
    for n in names:
        parts.append((FRAGMENTS / f"{n}.md").read_text().strip() + "\n")
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print(f"docs/benchmarks.md: {len(names)} sections")


if __name__ == "__main__":
    main()
