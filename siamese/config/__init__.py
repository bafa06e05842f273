"""Configuration: the typed schema, the rules between keys, loading YAML with `--set` overrides.

Lives here: `schema` (dataclasses with defaults and help), `typed` (generic typed loading,
overrides, YAML), `rules` (cross-key checks, `model.init` and `eval.threshold` grammar), `load`.
May import: `siamese.errors` only. Never mxnet: a config is checked before anything heavy loads.
"""

from .load import from_dict, load_config, to_dict
from .rules import INIT_ARGS, parse_init, parse_select, parse_threshold_rule
from .schema import (
    CONVNET_OPTIONS,
    EVAL_BATCH_SIZE,
    Config,
    DataConfig,
    EvalConfig,
    ExportConfig,
    LogConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
)
from .typed import apply_overrides, read_yaml, to_yaml

__all__ = ["CONVNET_OPTIONS", "EVAL_BATCH_SIZE", "Config", "DataConfig", "EvalConfig",
           "ExportConfig", "INIT_ARGS", "LogConfig",
           "LossConfig", "ModelConfig", "TrainConfig", "apply_overrides", "from_dict",
           "load_config", "parse_init", "parse_select", "parse_threshold_rule", "read_yaml",
           "to_dict", "to_yaml"]
