"""Datasets for learning and testing perceptual face similarity.

Every source of similarity judgments becomes a :class:`TripletSet` of :class:`Triplet`:

* :func:`load_simceleba`: SimCelebA, the PerFace paper's human judgments (3 answers per triplet);
* :func:`load_avfs`: AVFS odd-one-out human judgments, pooled per triplet;
* :func:`load_csv_triplets`: your own ``anchor,positive,negative[,weight]`` CSV;
* :func:`rating_triplets`: *rating-derived* triplets from One Million Impressions attribute
  ratings, a stand-in for human similarity judgments (not such judgments themselves).

:func:`load_utkface` and :func:`load_celeba` give gender/age-labelled faces for evaluation.
"""

from .avfs import avfs_image_path, load_avfs
from .csv_triplets import load_csv_triplets
from .errors import DatasetError, DatasetWarning
from .label_triplets import LabelTripletConfig, label_triplets, labelled_training_faces
from .labelled import (
    YOUNG_AGE_LIMIT,
    LabelledFace,
    in_training_part,
    load_celeba,
    load_utkface,
    parse_utkface_name,
    split_labelled,
)
from .ratings import (
    APPEARANCE_ATTRIBUTES,
    AttributeTable,
    RatingSpace,
    RatingsTable,
    RatingTripletConfig,
    RatingTripletReport,
    attribute_table,
    build_rating_triplets,
    load_ratings,
    rating_space,
    rating_triplets,
    split_faces,
    split_half_reliability,
)
from .simceleba import (
    SIMCELEBA_ANSWERS,
    SIMCELEBA_ARCHIVE,
    extract_simceleba,
    load_simceleba,
    read_identity_map,
    read_simceleba_answers,
)
from .triplets import IdentityMode, Triplet, TripletSet

__all__ = [
    "APPEARANCE_ATTRIBUTES",
    "SIMCELEBA_ANSWERS",
    "SIMCELEBA_ARCHIVE",
    "YOUNG_AGE_LIMIT",
    "AttributeTable",
    "DatasetError",
    "DatasetWarning",
    "IdentityMode",
    "LabelTripletConfig",
    "LabelledFace",
    "RatingSpace",
    "RatingTripletConfig",
    "RatingTripletReport",
    "RatingsTable",
    "Triplet",
    "TripletSet",
    "attribute_table",
    "avfs_image_path",
    "build_rating_triplets",
    "extract_simceleba",
    "label_triplets",
    "labelled_training_faces",
    "in_training_part",
    "load_avfs",
    "load_celeba",
    "load_csv_triplets",
    "load_ratings",
    "load_simceleba",
    "load_utkface",
    "parse_utkface_name",
    "rating_space",
    "rating_triplets",
    "read_identity_map",
    "read_simceleba_answers",
    "split_faces",
    "split_half_reliability",
    "split_labelled",
]
