"""Table 2's runner reuses a finished row only when it was made from the same inputs and code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "experiments/classifier_comparison.py"
spec = importlib.util.spec_from_file_location("classifier_comparison", SCRIPT)
comparison = importlib.util.module_from_spec(spec)
spec.loader.exec_module(comparison)


def _run(folder: Path, sha: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shards = {"aug-000-000-000000.tar": {"keys": ["k0"], "sha256": sha}}
    (folder / "manifest.json").write_text(json.dumps({"shards": shards, "config": {}}))
    return str(folder)


def test_fingerprint_follows_config_epochs_and_shards(tmp_path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model: {}\n")
    cf, null = _run(tmp_path / "cf", "aa"), str(tmp_path / "absent")
    first = comparison.inputs_fingerprint(str(config), 6, [cf, null])
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) == first
    assert comparison.inputs_fingerprint(str(config), 7, [cf, null]) != first
    _run(tmp_path / "cf", "bb")  # the same folder, other counterfactuals
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) != first
    other = comparison.inputs_fingerprint(str(config), 6, [cf, null])
    config.write_text("model: {lr: 1}\n")
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) != other


def test_fingerprint_follows_the_code(tmp_path) -> None:
    config, source = tmp_path / "config.yaml", tmp_path / "data.py"
    config.write_text("model: {}\n")
    source.write_text("SAMPLER = 'once'\n")
    first = comparison.inputs_fingerprint(str(config), 6, [], code=[source])
    source.write_text("SAMPLER = 'cycled'\n")
    assert comparison.inputs_fingerprint(str(config), 6, [], code=[source]) != first
    assert str(SCRIPT) in map(str, comparison.CODE)
    assert any(path.name == "data.py" for path in comparison.CODE)  # classifiers/data.py
