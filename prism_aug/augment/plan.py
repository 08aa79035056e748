"""The augmentation plan: which source image gets which edit, fixed before anything runs.

A plan is a table with one row per job (``PLAN_COLUMNS``), a pure function of the records
and the plan settings, so every rank of a run and every resumed run agree on it. Policies:

- ``balance``: for a target y and an editable attribute a, fill each class's minority
  group with counterfactuals of its majority group until P(a | y) = 1/2 in both classes.
  In the default study (effusion x support devices at 90/10) that removes devices from
  effusion-with-device images and adds devices to effusion-free images without one.
  ``max_per_group`` caps the jobs per filled group (a smaller run on a CPU).
- ``flip-all``: every record whose attribute is known gets it flipped.
- ``null-edit``: the sources of ``balance`` (same seed and cap) with the null edit
  ``keep:<attribute>``: the control that passes images through the generator unedited,
  so that "looks generated" cannot be what helps a classifier.
- ``jobs``: an explicit CSV of ``path`` (a record's path) and ``edit`` (``remove:...``).

Keys are stable and unique: the source's path with every character outside ``[A-Za-z0-9_-]``
replaced (webdataset cuts keys at the first dot), then the edit, e.g.
``synthcxr-train-patient00002-study1-view1_frontal__remove-support-devices``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prism_aug.data.prompts import ATTRIBUTES, EditSpec
from prism_aug.data.shortcuts import EXCLUDED, attribute_values, group_arrays, group_key
from prism_aug.data.vocabulary import PATH

POLICIES: tuple[str, ...] = ("balance", "flip-all", "null-edit", "jobs")
PLAN_COLUMNS: tuple[str, ...] = ("key", "source_key", "path", "edit", "group_before", "group_after")


@dataclass(frozen=True)
class PlanSettings:
    """What to generate (see the module docstring).

    Args:
        policy: "balance", "flip-all", "null-edit" or "jobs".
        target: the finding y whose groups are balanced and reported.
        attribute: the attribute a that is edited (a finding or a device).
        jobs: the CSV of the ``jobs`` policy (columns ``path`` and ``edit``).
        max_per_group: at most this many jobs per filled group (``balance``, ``null-edit``);
            None fills.
        seed: which majority-group images ``balance`` picks when it needs fewer than all.
    """

    policy: str = "balance"
    target: str = "Pleural Effusion"
    attribute: str = "Support Devices"
    jobs: Path | None = None
    max_per_group: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown plan policy {self.policy!r}; expected one of {POLICIES}")
        if self.policy == "jobs" and self.jobs is None:
            raise ValueError("the 'jobs' policy needs plan.jobs, a CSV with path and edit")
        if self.policy != "jobs" and self.attribute not in ATTRIBUTES:
            raise ValueError(
                f"plan attribute {self.attribute!r} cannot be edited; expected one of {ATTRIBUTES}"
            )
        if self.max_per_group is not None and self.max_per_group < 0:
            raise ValueError(f"max_per_group must be >= 0, got {self.max_per_group}")


def source_key(path: str) -> str:
    """A record path as a webdataset-safe key: no dots, slashes or spaces."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(Path(path).with_suffix("")))


def job_key(source: str, spec: EditSpec) -> str:
    """The key of one job: its source's key and its edit."""
    return f"{source}__{spec.action}-{source_key(spec.attribute.lower())}"


def make_plan(records: pd.DataFrame, settings: PlanSettings) -> pd.DataFrame:
    """The jobs of ``settings.policy`` over ``records`` (after the label policy).

    Raises:
        ValueError: an explicit job names an unknown path or a bad edit (file and row are
            named), two jobs share a key, or the attribute is not editable.
    """
    y, a = group_arrays(records, settings.target, settings.attribute)
    if settings.policy in ("balance", "null-edit"):
        rows, edits = _balance(y, a, settings)
        if settings.policy == "null-edit":
            edits = [f"keep:{settings.attribute}"] * len(edits)
    elif settings.policy == "flip-all":
        known = attribute_values(records, settings.attribute)  # whatever y is
        rows = np.flatnonzero(np.isin(known, (0.0, 1.0)))
        edits = ["remove" if known[i] else "add" for i in rows]
        edits = [f"{action}:{settings.attribute}" for action in edits]
    else:
        rows, edits = _explicit_jobs(records, settings.jobs)
    paths = records[PATH].to_numpy()[rows]
    sources = [source_key(p) for p in paths]
    specs = [EditSpec.parse(e) for e in edits]
    plan = pd.DataFrame(
        {
            "key": [job_key(s, spec) for s, spec in zip(sources, specs, strict=True)],
            "source_key": sources,
            "path": paths,
            "edit": [str(spec) for spec in specs],
            "group_before": [_group(y[i], a[i]) for i in rows],
            "group_after": _groups_after(records.iloc[rows], specs, settings),
        },
        columns=list(PLAN_COLUMNS),
    )
    duplicated = plan["key"].duplicated(keep=False)
    if duplicated.any():
        raise ValueError(
            f"jobs share keys (each source takes each edit once): "
            f"{sorted(set(plan.loc[duplicated, 'key']))[:5]}"
        )
    return plan


def _groups_after(
    sources: pd.DataFrame, specs: list[EditSpec], settings: PlanSettings
) -> list[str]:
    """Each job's group once its edit is made: the edited labels, read as the study reads
    them, so that an edit of the target, or of one device type under "Support Devices",
    moves its source too. An edit that does not apply keeps the source's group (the run
    records it as failed)."""
    if sources.empty:
        return []
    edited = []
    for labels, spec in zip(sources.to_dict("records"), specs, strict=True):
        applies, _ = spec.applies_to(labels)
        edited.append(spec.edited_labels(labels) if applies else labels)
    table = pd.DataFrame(edited, columns=sources.columns)
    y, a = group_arrays(table, settings.target, settings.attribute)
    return [_group(y_i, a_i) for y_i, a_i in zip(y, a, strict=True)]


def _group(y: int, a: int) -> str:
    return group_key(int(y), int(a)) if y >= 0 and a >= 0 else EXCLUDED


def _balance(y: np.ndarray, a: np.ndarray, settings: PlanSettings) -> tuple[np.ndarray, list]:
    """Rows and edits that make a's groups equal within each class of y."""
    rng = np.random.default_rng(settings.seed)
    rows, edits = [], []
    for label in (1, 0):
        holders = np.flatnonzero((y == label) & (a == 1))
        others = np.flatnonzero((y == label) & (a == 0))
        majority, action = (holders, "remove") if len(holders) > len(others) else (others, "add")
        need = abs(len(holders) - len(others))
        if settings.max_per_group is not None:
            need = min(need, settings.max_per_group)
        picked = np.sort(rng.choice(majority, size=need, replace=False))
        rows.extend(picked.tolist())
        edits.extend([f"{action}:{settings.attribute}"] * need)
    return np.asarray(rows, dtype=np.int64), edits


def _explicit_jobs(records: pd.DataFrame, jobs_csv: Path) -> tuple[np.ndarray, list[str]]:
    """Rows of ``records`` and edits named by a jobs CSV (columns ``path`` and ``edit``)."""
    jobs = pd.read_csv(jobs_csv, dtype="str", keep_default_na=False)
    jobs.columns = [c.lower() for c in jobs.columns]
    missing = {"path", "edit"} - set(jobs.columns)
    if missing:
        raise KeyError(f"{jobs_csv}: columns {sorted(missing)} missing; it has {list(jobs)}")
    row_of = {path: i for i, path in enumerate(records[PATH])}
    rows = []
    for line, (path, edit) in enumerate(zip(jobs["path"], jobs["edit"], strict=True), start=2):
        if path not in row_of:
            raise ValueError(f"{jobs_csv} line {line}: path {path!r} is not in the records")
        try:
            EditSpec.parse(edit)
        except ValueError as err:
            raise ValueError(f"{jobs_csv} line {line}: {err}") from err
        rows.append(row_of[path])
    return np.asarray(rows, dtype=np.int64), list(jobs["edit"])
