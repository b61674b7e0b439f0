"""``LesionClassifier``: 7-class diagnosis by transfer learning, scikit-learn style.

The constructor only stores settings; :meth:`LesionClassifier.fit` builds the network (any
registry backbone + a linear head) and trains it with the shared engine
(:func:`hamkit.engine.fitting.fit_estimator`). Class imbalance is handled in constant memory, by
a class-weighted sampler (the default) or a class-weighted loss, never by copying images; the
best epoch is chosen by validation balanced accuracy, the ISIC 2018 Task 3 metric.

Modules: :mod:`~hamkit.classify.network` (the network), :mod:`~hamkit.classify.task` (loss,
validation and batched inference), :mod:`~hamkit.classify.estimator`
(:class:`LesionClassifier`). The public names are re-exported here.
"""

from __future__ import annotations

from hamkit.classify.estimator import LesionClassifier
from hamkit.classify.network import ClassifierNetwork
from hamkit.engine.fitting import balance_weights, dataset_labels
from hamkit.engine.settings import CLASS_BALANCE_MODES

__all__ = ["LesionClassifier", "ClassifierNetwork", "CLASS_BALANCE_MODES", "dataset_labels", "balance_weights"]
