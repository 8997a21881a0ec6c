"""benchmarks/distill.py: the unlabelled pool leaves out every row a run trains, validates or tests on, and the table
has a row per finished run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
distill = pytest.importorskip("benchmarks.distill")
settings = pytest.importorskip("benchmarks.distill_settings")


def test_the_pool_holds_each_other_text_once_in_file_order() -> None:
    full = [("a 0", "a"), ("b 0", "b"), ("a 1", "a"), ("a 0", "a"), ("b 1", "b"), ("b 2", "b")]
    taken = [("a 0", "a"), ("b 2", "b")]
    assert distill.pool_texts(full, taken) == ["b 0", "a 1", "b 1"]


def test_the_table_has_a_row_per_finished_run() -> None:
    scores = {"latency_ms_p50": 3.1}
    record = {
        "teacher": "mpnet-base",
        "student": "minilm-l6",
        "results": {
            "teacher": {"accuracy": 0.89, "macro_f1": 0.88, "train_rows": 770, "train_seconds": 900.0},
            "distilled-pool": {
                "accuracy": 0.87,
                "macro_f1": 0.86,
                "train_rows": 770,
                "train_seconds": 1000.0,
                "texts": 8622,
                "agreement_with_teacher": 0.9312,
                "student": scores,
            },  # fmt: skip
        },
    }
    lines = distill.markdown(record).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| teacher | mpnet-base | 770 | 0.8900 | 0.8800 | – | 900 | – |"
    assert lines[3] == "| distilled-pool | minilm-l6 | 8,622 | 0.8700 | 0.8600 | 0.9312 | 1000 | 3.1 |"


def test_data_with_out_of_scope_rows_adds_in_scope_accuracy_and_recall_columns() -> None:
    oos = {"in_scope_accuracy": 0.95, "oos_recall": 0.81,
           "in_scope_accuracy_before_rejection": 0.965, "oos_recall_before_rejection": 0.4}  # fmt: skip
    record = {
        "teacher": "mpnet-base",
        "student": "minilm-l6",
        "results": {"teacher": {"accuracy": 0.9, "macro_f1": 0.91, "train_rows": 15100, "train_seconds": 60.0} | oos},
    }
    header, rule, row = distill.markdown(record).splitlines()
    assert "| in-scope acc. | OOS recall | before rejection: in-scope acc. / OOS recall |" in header
    assert rule.count("|") == header.count("|")
    assert row == "| teacher | mpnet-base | 15,100 | 0.9000 | 0.9100 | 0.9500 | 0.8100 | 0.9650 / 0.4000 | – | 60 | – |"


def test_an_interrupted_run_resumes_from_its_folder_alone() -> None:
    train = ["bin/intentune", "train", "--quiet", "data/train.csv", "--validation", "v.csv", "--backbone", "mpnet-base",
             "-o", "runs/x/teacher"]  # fmt: skip
    assert distill.resume_command(train) == ["bin/intentune", "train", "--quiet", "-o", "runs/x/teacher", "--resume"]
    student = ["bin/intentune", "distill", "runs/x/teacher", "--student", "minilm-l6", "--quiet", "--unlabeled",
               "pool.txt", "-o", "runs/x/d"]  # fmt: skip
    assert distill.resume_command(student) == [
        "bin/intentune", "distill", "runs/x/teacher", "--quiet", "--unlabeled", "pool.txt", "-o", "runs/x/d", "--resume"
    ]  # fmt: skip


def test_the_settings_table_marks_the_setting_validation_chooses_first_in_order_on_a_tie() -> None:
    def result(t: float, a: float, order: int, val: float, test: float) -> dict:
        return {"temperature": t, "alpha": a, "order": order, "validation_accuracy": val, "accuracy": test,
                "agreement_with_teacher": 0.9, "train_seconds": 50.0}  # fmt: skip

    record = {"results": {
        "distilled-T1-a0.5": result(1.0, 0.5, 0, 0.87, 0.86),
        "distilled-T4-a0.8": result(4.0, 0.8, 3, 0.88, 0.85),  # the best validation, not the best test
        "distilled-T2-a0.5": result(2.0, 0.5, 1, 0.88, 0.87),  # the same validation, earlier in the grid: chosen
    }}  # fmt: skip
    rows = settings.markdown(record).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| 1.0", "| 2.0", "| 4.0"]  # grid order
    assert "**0.8800**" in rows[1] and "**" not in rows[0] + rows[2]


def test_each_data_choice_has_its_own_work_folder() -> None:
    names = [distill.work_dir(d, "mpnet-base", "minilm-l6").name for d in ("10shot", "full", "clinc150")]
    assert names == ["bench-distill-mpnet-base-minilm-l6", "bench-distill-mpnet-base-minilm-l6-full",
                     "bench-distill-mpnet-base-minilm-l6-clinc150"]  # fmt: skip
    assert distill.work_dir("full", "a", "b", quick=True).name == "bench-distill-quick-full"
