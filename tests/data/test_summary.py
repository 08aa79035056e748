"""The data summary: counts under the policy, splits, groups, JSON and the text tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prism_aug.data.labels import LabelPolicy
from prism_aug.data.records import filter_views, read_chexpert
from prism_aug.data.summary import format_summary, summarize, summarize_csv


@pytest.fixture
def csv_path(write_csv, chexpert_row) -> Path:
    return write_csv(
        [
            chexpert_row(1, 1, Pleural_Effusion=1.0, Support_Devices=1.0),
            chexpert_row(1, 1, view="Lateral", Pleural_Effusion=1.0, Support_Devices=1.0),
            chexpert_row(1, 2, Pleural_Effusion=-1.0, Support_Devices=1.0),
            chexpert_row(2, 1, ap_pa="PA", Pleural_Effusion=0.0, Support_Devices=1.0),
            chexpert_row(3, 1, No_Finding=1.0),
            chexpert_row(4, 1, Pleural_Effusion=1.0, Support_Devices=-1.0),
        ]
    )


def test_summary_counts_under_the_policy(csv_path: Path) -> None:
    records = filter_views(read_chexpert(csv_path))
    summary = summarize(records, LabelPolicy(), "Pleural Effusion", "Support Devices")
    assert summary["rows_read"] == 6 and summary["rows_kept"] == 5
    assert summary["patients"] == 4 and summary["studies"] == 5
    assert summary["view_filter"] == {"views": ["Frontal"], "ap_pa": None}
    assert summary["findings"]["Pleural Effusion"] == {"positive": 2, "negative": 2, "masked": 1}
    assert summary["findings"]["No Finding"] == {"positive": 1, "negative": 4, "masked": 0}
    assert summary["groups"]["counts"] == {
        "y=1,a=1": 1,
        "y=1,a=0": 0,
        "y=0,a=1": 1,
        "y=0,a=0": 1,
        "excluded": 2,
    }
    assert summary["groups"]["p_a_given_y1"] == 1.0
    assert summary["groups"]["p_a_given_y0"] == 0.5
    splits = summary["splits"]
    assert sum(s["rows"] for s in splits.values()) == 5
    assert sum(s["patients"] for s in splits.values()) == 4
    assert json.loads(json.dumps(summary)) == summary


def test_policy_changes_the_counts(csv_path: Path) -> None:
    policy = LabelPolicy(uncertain={"Pleural Effusion": "ones"}, blank="ignore")
    summary = summarize_csv(csv_path, policy=policy, views=("Frontal", "Lateral"))
    assert summary["rows_kept"] == 6 and "groups" not in summary
    assert summary["findings"]["Pleural Effusion"] == {"positive": 4, "negative": 1, "masked": 1}
    assert summary["findings"]["Support Devices"] == {"positive": 4, "negative": 0, "masked": 2}
    assert summary["policy"] == {"uncertain": {"Pleural Effusion": "ones"}, "blank": "ignore"}


def test_summarize_csv_is_the_cli_chain(csv_path: Path) -> None:
    chained = summarize(
        filter_views(read_chexpert(csv_path), ap_pa="AP"), LabelPolicy(), "Edema", "Sex=Female"
    )
    assert summarize_csv(csv_path, ap_pa="AP", target="Edema", attribute="Sex=Female") == chained


def test_format_summary_prints_aligned_tables(csv_path: Path) -> None:
    summary = summarize_csv(csv_path, target="Pleural Effusion", attribute="Support Devices")
    text = format_summary(summary)
    lines = text.splitlines()
    assert any(line.startswith("rows kept (views Frontal; AP/PA any)") for line in lines)
    table = lines[lines.index("label policy: uncertain=ignore, blank=zeros") + 1 :][:16]
    assert table[0].split() == ["finding", "positive", "negative", "masked"]
    assert len({len(line) for line in table}) == 1  # every row as wide as the header
    assert table[-4].split()[-3:] == ["2", "2", "1"]  # Pleural Effusion
    assert "groups: y = Pleural Effusion, a = Support Devices" in text
    assert "excluded (y or a uncertain, masked or blank): 2" in text


def test_errors_before_reading(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(ValueError, match="give both target and attribute"):
        summarize_csv(missing, target="Edema")
    with pytest.raises(ValueError, match=r"unknown finding 'Effusion'.*Pleural Effusion"):
        summarize_csv(missing, target="Effusion", attribute="Sex=Female")
    with pytest.raises(FileNotFoundError):
        summarize_csv(missing)


def test_bad_split_fractions(csv_path: Path) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        summarize_csv(csv_path, fractions=(0.5, 0.2, 0.2))
