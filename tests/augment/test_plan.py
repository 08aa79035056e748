"""Planning: the balance policy's counts, flip-all, explicit job lists, keys."""

from __future__ import annotations

import pandas as pd
import pytest

from prism_aug.augment.plan import PlanSettings, make_plan, source_key
from prism_aug.data.shortcuts import group_counts


def _records(n11: int, n10: int, n01: int, n00: int) -> pd.DataFrame:
    groups = [(1, 1)] * n11 + [(1, 0)] * n10 + [(0, 1)] * n01 + [(0, 0)] * n00
    return pd.DataFrame(
        {
            "path": [
                f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.jpg"
                for i in range(len(groups))
            ],
            "Pleural Effusion": [float(y) for y, _ in groups],
            "Support Devices": [float(a) for _, a in groups],
        }
    )


def test_balance_fills_each_class_minority_to_its_majority():
    records = _records(n11=9, n10=2, n01=1, n00=6)
    plan = make_plan(records, PlanSettings())
    assert plan["edit"].value_counts().to_dict() == {
        "remove:Support Devices": 7,
        "add:Support Devices": 5,
    }
    assert (plan.loc[plan["edit"].str.startswith("remove"), "group_before"] == "y=1,a=1").all()
    assert (plan.loc[plan["edit"].str.startswith("add"), "group_before"] == "y=0,a=0").all()
    after = group_counts(records, "Pleural Effusion", "Support Devices")
    for group, n in plan["group_after"].value_counts().items():
        after[group] += n
    assert after["y=1,a=1"] == after["y=1,a=0"] == 9
    assert after["y=0,a=1"] == after["y=0,a=0"] == 6


def test_balance_is_deterministic_capped_and_seeded():
    records = _records(n11=30, n10=2, n01=2, n00=30)
    plan = make_plan(records, PlanSettings(max_per_group=5))
    assert plan.equals(make_plan(records, PlanSettings(max_per_group=5)))
    assert plan["group_after"].value_counts().to_dict() == {"y=1,a=0": 5, "y=0,a=1": 5}
    other = make_plan(records, PlanSettings(max_per_group=5, seed=1))
    assert set(other["key"]) != set(plan["key"])


def test_flip_all_flips_every_known_attribute():
    records = _records(n11=2, n10=1, n01=1, n00=2)
    records.loc[0, "Support Devices"] = -1.0  # uncertain: not flipped
    records.loc[1, "Pleural Effusion"] = -1.0  # the target uncertain, the attribute known
    plan = make_plan(records, PlanSettings(policy="flip-all"))
    assert len(plan) == 5
    assert plan.loc[plan["path"] == records["path"][1], "group_before"].tolist() == ["excluded"]
    known = plan["group_before"] != "excluded"
    assert (plan.loc[known, "group_before"].str[-1] != plan.loc[known, "group_after"].str[-1]).all()


def test_keys_are_unique_and_safe_for_webdataset():
    plan = make_plan(_records(4, 1, 1, 4), PlanSettings(policy="flip-all"))
    assert plan["key"].is_unique
    assert not plan["key"].str.contains(r"[./ ]").any()  # webdataset cuts keys at a dot
    assert source_key("CheXpert-v1.0-small/train/p1/s1/view1_frontal.jpg") == (
        "CheXpert-v1-0-small-train-p1-s1-view1_frontal"
    )


def test_explicit_jobs(tmp_path):
    records = _records(2, 1, 1, 2)
    jobs = tmp_path / "jobs.csv"
    pd.DataFrame(
        {"path": records["path"][[0, 4]], "edit": ["remove:Support Devices", "add:Cardiomegaly"]}
    ).to_csv(jobs, index=False)
    plan = make_plan(records, PlanSettings(policy="jobs", jobs=jobs))
    assert plan["edit"].tolist() == ["remove:Support Devices", "add:Cardiomegaly"]
    # Cardiomegaly is not the study's attribute: that job stays in its group.
    assert plan["group_after"].tolist() == ["y=1,a=0", "y=0,a=0"]


def test_jobs_that_edit_the_target_or_one_device_move_their_source(tmp_path):
    records = _records(0, 0, 2, 2)  # y=0: two with a device, two without
    records["Devices"] = ["Pacemaker", "Pacemaker;Chest Tube", "", ""]
    jobs = tmp_path / "jobs.csv"
    edits = ["remove:Pacemaker", "remove:Pacemaker", "add:Pleural Effusion", "add:Chest Tube"]
    pd.DataFrame({"path": records["path"], "edit": edits}).to_csv(jobs, index=False)
    plan = make_plan(records, PlanSettings(policy="jobs", jobs=jobs))
    assert plan["group_before"].tolist() == ["y=0,a=1", "y=0,a=1", "y=0,a=0", "y=0,a=0"]
    # The last device gone, a chest tube still there, an effusion added, a device added.
    assert plan["group_after"].tolist() == ["y=0,a=0", "y=0,a=1", "y=1,a=0", "y=0,a=1"]


@pytest.mark.parametrize(
    ("path", "edit", "message"),
    [
        ("nowhere.jpg", "remove:Support Devices", "line 3: path 'nowhere.jpg' is not in"),
        (None, "shrink:Cardiomegaly", "line 3: unknown edit action"),
        (None, "remove:Support Devices", "jobs share keys"),
    ],
)
def test_bad_jobs_name_the_line(tmp_path, path, edit, message):
    records = _records(2, 1, 1, 2)
    first = records["path"][0]
    jobs = tmp_path / "jobs.csv"
    pd.DataFrame({"path": [first, path or first], "edit": ["remove:Support Devices", edit]}).to_csv(
        jobs, index=False
    )
    with pytest.raises(ValueError, match=message):
        make_plan(records, PlanSettings(policy="jobs", jobs=jobs))


def test_settings_refuse_what_cannot_be_planned():
    with pytest.raises(ValueError, match="cannot be edited"):
        PlanSettings(attribute="Sex=Female")
    with pytest.raises(ValueError, match=r"needs plan\.jobs"):
        PlanSettings(policy="jobs")
    with pytest.raises(ValueError, match="unknown plan policy"):
        PlanSettings(policy="all")
    assert make_plan(_records(1, 1, 1, 1), PlanSettings()).empty  # already balanced


def test_the_null_edit_control_takes_the_sources_of_balance():
    records = _records(n11=9, n10=2, n01=1, n00=6)
    balance = make_plan(records, PlanSettings(max_per_group=4))
    control = make_plan(records, PlanSettings(policy="null-edit", max_per_group=4))
    assert control["source_key"].tolist() == balance["source_key"].tolist()
    assert set(control["edit"]) == {"keep:Support Devices"}
    assert (control["group_after"] == control["group_before"]).all()
    assert control["key"].str.endswith("__keep-support-devices").all()
