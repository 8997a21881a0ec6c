"""benchmarks/latency.py's summaries: rounds pooled for p50/p95, each round's p50 kept, the table shows both."""

from __future__ import annotations

from benchmarks.latency import latency_summary, markdown


def test_latency_summary_pools_rounds_and_keeps_each_rounds_p50() -> None:
    summary = latency_summary([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])
    assert summary["queries"] == 7 and summary["rounds"] == 2
    assert summary["p50_ms"] == 4.0 and summary["mean_ms"] == 4.0
    assert summary["round_p50_ms"] == [2.0, 5.5]
    assert summary["p95_ms"] == 6.7


def test_markdown_names_cut_backbones_and_the_rounds() -> None:
    row = {"backbone": "smollm2-135m", "num_layers": 8, "runtime": "onnx", "file_mib": 217.2, "p50_ms": 14.45,
           "p95_ms": 23.26, "round_p50_ms": [14.11, 14.53], "throughput_texts_per_s": 47.5, "accuracy": 0.488,
           "agreement_with_torch": None}  # fmt: skip
    table = markdown([row, row | {"num_layers": None, "agreement_with_torch": 1.0}])
    lines = table.splitlines()
    assert lines[2] == "| smollm2-135m (8 layers) | onnx | 217.2 | 14.45 | 23.26 | 14.11 / 14.53 | 47.5 | 0.4880 |  |"
    assert lines[3].startswith("| smollm2-135m | onnx |") and lines[3].endswith("| 0.4880 | 1.0000 |")
