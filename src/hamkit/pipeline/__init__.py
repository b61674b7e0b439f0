"""``hamkit run``: the whole job end to end (data -> dedup -> leakage-free split -> classifier ->
segmenter -> report), resumable, configured by one TOML file."""

from hamkit.pipeline.config import DEFAULTS, PRESETS, load_config, to_toml

__all__ = ["DEFAULTS", "PRESETS", "load_config", "to_toml"]
