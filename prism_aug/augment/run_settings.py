"""What decides the bytes of a run's samples, kept beside its plan (``run.json``).

The plan fixes which jobs a run does; these settings fix how: the model, the verifier, the
editor's settings, the seed, the chunk size (images edited together, which batched CPU
arithmetic depends on) and the precision. A resume with other settings would mix two
set-ups in one run while its manifest named only the last, so it is refused. A setting added
to prism-aug after a run was started is compared by its default, the behaviour the run had
before it existed, so an upgrade alone does not stop a resume.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from prism_aug.augment.shards import filesystem

RUN_SETTINGS_NAME = "run.json"


def _as_stored(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as run.json holds them (tuples as lists), so that they compare equal."""
    return json.loads(json.dumps(settings))


def check_run_settings(
    out: str, settings: dict[str, Any], defaults: Mapping[str, dict[str, Any]] | None = None
) -> None:
    """Record ``settings`` in run folder ``out``, or check them against those recorded.

    Every rank may call this: a new run's ranks write the same file, each under a name of
    its own renamed into place.

    Args:
        out: the run folder (any fsspec URL).
        settings: what decides the samples' bytes, JSON-serialisable.
        defaults: for a group of settings (``{"settings": asdict(EditorSettings())}``), the
            value a key missing from the recorded group stands for.

    Raises:
        ValueError: the run was started with other settings (each difference named).
    """
    current = _as_stored(settings)
    fs, folder = filesystem(out)
    path = f"{folder}/{RUN_SETTINGS_NAME}"
    if fs.exists(path):
        with fs.open(path, "r") as f:
            recorded = json.load(f)
        for group, values in _as_stored(defaults or {}).items():
            if isinstance(recorded.get(group), dict):
                recorded[group] = {**values, **recorded[group]}
        changed = sorted(k for k in {*recorded, *current} if recorded.get(k) != current.get(k))
        if changed:
            differences = "; ".join(
                f"{k}: {recorded.get(k)!r} then, {current.get(k)!r} now" for k in changed
            )
            raise ValueError(
                f"{out}/{RUN_SETTINGS_NAME}: this run was started with other settings "
                f"({differences}); resume with the same ones, or give a new out folder"
            )
        return
    fs.makedirs(folder, exist_ok=True)
    partial = f"{path}.{uuid.uuid4().hex}.partial"
    with fs.open(partial, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)
    fs.mv(partial, path)
