"""Counterfactual quality, and the oracle that judges images (every SynthCXR attribute).

oracle = load_oracle("outputs/models/oracle")      # prism-aug oracle fit --config ...
p = oracle.predict_proba(images)                    # (B, 11), columns oracle.attributes
print(to_markdown(oracle_report(oracle, read_chexpert("data/synthcxr/test.csv"))))
"""

from prism_aug.evaluation.oracle import ExportOracle, Oracle, load_oracle, save_oracle
from prism_aug.evaluation.oracle_cli import run_oracle_cli
from prism_aug.evaluation.oracle_data import (
    ORACLE_ATTRIBUTES,
    OracleRecords,
    OracleRenders,
    images_to_tensor,
    record_labels,
)
from prism_aug.evaluation.oracle_datamodule import OracleDataModule
from prism_aug.evaluation.oracle_module import OracleModule
from prism_aug.evaluation.oracle_network import OracleNetwork
from prism_aug.evaluation.oracle_report import oracle_report, to_markdown

__all__ = [
    "ORACLE_ATTRIBUTES",
    "ExportOracle",
    "Oracle",
    "OracleDataModule",
    "OracleModule",
    "OracleNetwork",
    "OracleRecords",
    "OracleRenders",
    "images_to_tensor",
    "load_oracle",
    "oracle_report",
    "record_labels",
    "run_oracle_cli",
    "save_oracle",
    "to_markdown",
]
