"""hamkit: leakage-free deduplication, classification and segmentation of dermoscopic images.

Public names are imported lazily, so ``import hamkit`` (and ``hamkit --help``) stays fast and
does not import torch until a name that needs it is used.

Examples:
    >>> import hamkit
    >>> hamkit.CLASS_CODES
    ('mel', 'nv', 'bcc', 'akiec', 'bkl', 'df', 'vasc')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes
from hamkit._version import __version__
from hamkit.classes import CLASS_CODES, CLASS_NAMES, ISIC_COLUMNS, NUM_CLASSES, class_index
from hamkit.errors import (
    BackboneNotFoundError,
    DataError,
    HamkitError,
    PluginError,
    TrainingError,
    WeightsError,
)

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    "BackboneSpec": "hamkit.backbones.registry",
    "PluginInfo": "hamkit.backbones.registry",
    "register_backbone": "hamkit.backbones.registry",
    "create_backbone": "hamkit.backbones.registry",
    "get_backbone": "hamkit.backbones.registry",
    "list_backbones": "hamkit.backbones.registry",
    "list_plugins": "hamkit.backbones.registry",
    "ImageRecord": "hamkit.data.metadata",
    "read_metadata": "hamkit.data.metadata",
    "read_isic_groundtruth": "hamkit.data.metadata",
    "SkinDataset": "hamkit.data.dataset",
    "DecodeCache": "hamkit.data.cache",
    "split_dataset": "hamkit.data.splits",
    "make_synthetic": "hamkit.synthetic.generator",
    "SyntheticDataset": "hamkit.synthetic.generator",
    "download_ham10000": "hamkit.ham10000.download",
    "run_pipeline": "hamkit.pipeline.run",
    "PipelineResult": "hamkit.pipeline.run",
    "TrainConfig": "hamkit.engine.recipe",
    "cross_validate_folds": "hamkit.crossval",
    "export_onnx": "hamkit.export",
    "CrossValidationResult": "hamkit.crossval",
    "LesionClassifier": "hamkit.classify",
    "LesionSegmenter": "hamkit.segment",
    "SegmentationPrediction": "hamkit.segment",
    "SegmentationReport": "hamkit.metrics",
    "segmentation_report": "hamkit.metrics",
    "Deduplicator": "hamkit.dedup.deduplicator",
    "DedupResult": "hamkit.dedup.result",
    "ClassificationReport": "hamkit.metrics",
    "classification_report": "hamkit.metrics",
}

__all__ = [
    "__version__",
    "CLASS_CODES",
    "CLASS_NAMES",
    "ISIC_COLUMNS",
    "NUM_CLASSES",
    "class_index",
    "HamkitError",
    "DataError",
    "BackboneNotFoundError",
    "PluginError",
    "WeightsError",
    "TrainingError",
    *_LAZY,
]


__getattr__, __dir__ = lazy_attributes("hamkit", globals(), _LAZY)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.backbones.registry import (
        BackboneSpec,
        PluginInfo,
        create_backbone,
        get_backbone,
        list_backbones,
        list_plugins,
        register_backbone,
    )
    from hamkit.classify import LesionClassifier
    from hamkit.crossval import CrossValidationResult, cross_validate_folds
    from hamkit.data.cache import DecodeCache
    from hamkit.data.dataset import SkinDataset
    from hamkit.data.metadata import ImageRecord, read_isic_groundtruth, read_metadata
    from hamkit.data.splits import split_dataset
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.result import DedupResult
    from hamkit.engine.recipe import TrainConfig
    from hamkit.export import export_onnx
    from hamkit.ham10000.download import download_ham10000
    from hamkit.metrics import ClassificationReport, SegmentationReport, classification_report, segmentation_report
    from hamkit.pipeline.run import PipelineResult, run_pipeline
    from hamkit.segment import LesionSegmenter, SegmentationPrediction
    from hamkit.synthetic.generator import SyntheticDataset, make_synthetic
