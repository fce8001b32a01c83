"""Published model families, each searchable and exportable (nas.zoo).

A family is one module in this package (``zoo/<family>.py``) registering a
:class:`Family`, plus its search space ``grammars/zoo/<family>.pcfg``. See docs/zoo.md.
"""

from nas.zoo._registry import (
    Family,
    TaskInfo,
    ZooResult,
    arch_from_config,
    config_from_arch,
    get_family,
    list_families,
    parse_config,
    register_family,
)
from nas.zoo._run import count_macs, export_config, train_config
from nas.zoo._space import zoo_space

from nas.compile import count_params

__all__ = [
    "Family",
    "TaskInfo",
    "ZooResult",
    "arch_from_config",
    "config_from_arch",
    "count_macs",
    "count_params",
    "export_config",
    "get_family",
    "list_families",
    "parse_config",
    "register_family",
    "train_config",
    "zoo_space",
]
