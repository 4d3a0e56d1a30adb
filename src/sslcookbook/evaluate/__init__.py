"""Evaluation protocol: how good are frozen self-supervised features?

Embed a dataset with a frozen encoder, then measure

* **kNN accuracy** — weighted cosine k-nearest-neighbour vote (Wu et al. 2018, *InstDisc*; the
  protocol DINO uses),
* **linear probe** — logistic regression on standardised frozen features, with all labels or only
  ``k`` labels per class (label efficiency),
* **RankMe** — effective rank of the embedding (Garrido et al. 2023),
* **alignment / uniformity** — Wang & Isola 2020,
* **feature std** — a cheap collapse monitor,

and compare the SSL encoder with two baselines: raw pixels and the same architecture at random
initialisation (:func:`compare_baselines`), and with the same architecture trained end to end on the
same few labels (:func:`supervised_baseline`) or fine-tuned end to end from the SSL weights on them
(:func:`fine_tune`: the protocol masked-image models are judged by). Everything is plain PyTorch and
runs on CPU or CUDA tensors; :func:`embed` returns features on the CPU.

Modules: ``embedding`` (frozen features), ``baselines`` (raw pixels, random init), ``knn``, ``probe``
(L-BFGS linear probe, few-shot draws), ``statistics`` (RankMe, alignment, uniformity, feature std),
``report`` (the full report and the baseline comparison), ``supervised`` (the same architecture trained
from scratch on the few labels, :func:`supervised_baseline`, or fine-tuned from its trained weights,
:func:`fine_tune`); ``_checks`` and ``_modules`` are shared
input checks and the lookup of the modules behind an encoder function.
"""

from .baselines import RANDOM_INIT_SEED, random_encoder_like, raw_pixel_features
from .embedding import embed
from .knn import knn_accuracy, knn_predict
from .language_image import retrieval_recall, zero_shot_accuracy, zero_shot_classifier, zero_shot_scores
from .probe import (
    DEFAULT_PROBE_MAX_ITER,
    DEFAULT_PROBE_WEIGHT_DECAY,
    FEW_SHOT_REPEATS,
    PROBE_GRAD_TOLERANCE,
    few_shot_indices,
    label_efficiency,
    linear_probe,
)
from .report import compare_baselines, evaluate_features
from .sequence import anomaly_auroc, auroc, forecasting_scores, knn_anomaly_scores, raw_series_features
from .statistics import alignment, feature_std, rankme, uniformity
from .supervised import DEFAULT_SUPERVISED_STEPS, fine_tune, supervised_baseline

__all__ = [
    "embed",
    "raw_pixel_features",
    "knn_predict",
    "knn_accuracy",
    "few_shot_indices",
    "linear_probe",
    "label_efficiency",
    "rankme",
    "alignment",
    "uniformity",
    "feature_std",
    "random_encoder_like",
    "evaluate_features",
    "compare_baselines",
    "supervised_baseline",
    "fine_tune",
    "DEFAULT_PROBE_WEIGHT_DECAY",
    "DEFAULT_PROBE_MAX_ITER",
    "FEW_SHOT_REPEATS",
    "RANDOM_INIT_SEED",
    "PROBE_GRAD_TOLERANCE",
    "DEFAULT_SUPERVISED_STEPS",
    "zero_shot_classifier",
    "zero_shot_accuracy",
    "retrieval_recall",
    "zero_shot_scores",
    "anomaly_auroc",
    "auroc",
    "forecasting_scores",
    "knn_anomaly_scores",
    "raw_series_features",
]
