"""``hamkit run``: the whole job end to end (data -> dedup -> leakage-free split -> classifier ->
segmenter -> report), resumable, configured by one TOML file.

``run_pipeline`` and ``PipelineResult`` load on first use (they import the estimators).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes
from hamkit.pipeline.config import DEFAULTS, PRESETS, load_config, to_toml

_LAZY: dict[str, str] = {
    "run_pipeline": "hamkit.pipeline.run",
    "PipelineResult": "hamkit.pipeline.run",
    "check_settings": "hamkit.pipeline.validate",
}
__all__ = ["DEFAULTS", "PRESETS", "PipelineResult", "check_settings", "load_config", "run_pipeline", "to_toml"]
__getattr__, __dir__ = lazy_attributes("hamkit.pipeline", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.pipeline.run import PipelineResult, run_pipeline
    from hamkit.pipeline.validate import check_settings
