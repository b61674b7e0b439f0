"""The ``export_onnx`` method both estimators share (imports nothing heavy)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["OnnxExportable"]


class OnnxExportable:
    """Gives an estimator ``export_onnx`` (a mixin of ``LesionClassifier`` and ``LesionSegmenter``)."""

    def export_onnx(self, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write the fitted network as ONNX (any batch size) with ``<stem>.preprocessing.json``
        beside it, after checking ONNX Runtime against PyTorch; see
        :func:`hamkit.export.export_onnx` for ``options`` (``opset``, ``check``, ``atol``).

        Returns:
            The :class:`~hamkit.export.ExportResult` (paths, outputs, max abs differences).
        """
        from hamkit.export import export_onnx

        return export_onnx(self, path, **options)
