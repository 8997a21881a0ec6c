"""benchmarks/draw_fewshot.py: k rows per intent, the same draw for the same seed, a clear error for short intents."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
draw_fewshot = pytest.importorskip("benchmarks.draw_fewshot")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows([(f"{intent} message {i}", intent) for intent in ("b", "a") for i in range(6)])
    return path


def test_draws_k_rows_per_intent_reproducibly(source: Path) -> None:
    first = draw_fewshot.draw(source, 3, seed=1)
    assert [r["intent"] for r in first] == ["a"] * 3 + ["b"] * 3  # intents in sorted order
    assert len({r["text"] for r in first}) == 6
    assert first == draw_fewshot.draw(source, 3, seed=1)
    assert first != draw_fewshot.draw(source, 3, seed=2)


def test_too_few_rows_is_a_clear_error(source: Path) -> None:
    with pytest.raises(SystemExit, match="fewer than --shots 7"):
        draw_fewshot.draw(source, 7, seed=1)
