"""The benchmark suite's renderer on fixed records: table rows, ratios within a run, verdicts, the marked block."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
render = pytest.importorskip("benchmarks.render")

RUN = {
    "suite": "quick",
    "device": "cpu",
    "id": "2026-11-26T17:00:00",
    "machine": {"cpu": "AMD EPYC", "cores": "2", "gpu": "none", "python": "3.11.7", "torch": "2.13.0",
                "transformers": "5.24.0", "commit": "abc1234", "date": "2026-11-26"},
    "versions": {"setfit": "1.2.0"},
    "threads": 1,
}  # fmt: skip


def record(method: str, accuracy: float, seconds: float, val: float, curve: list[dict] | None = None) -> dict:
    return {
        "piece": f"banking77-10shot/{method}",
        "task": "banking77-10shot",
        "method": method,
        "metrics": {"accuracy": accuracy, "macro_f1": accuracy - 0.01, "in_scope_accuracy": None, "oos_recall": None},
        "validation_accuracy": val,
        "train_seconds": seconds,
        "train_examples_per_s": 100.0,
        "time_to_final_val_accuracy_s": seconds,
        "curve": curve or [],
        "latency_ms": {"p50": 12.0, "p95": 20.0},
        "process": {"wall_s": seconds + 5, "peak_rss_mib": 1000.0},
        "run": RUN,
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    curve = [
        {"epoch": 1.0, "val_accuracy": 0.5, "elapsed_s": 10.0},
        {"epoch": 2.0, "val_accuracy": 0.8, "elapsed_s": 20.0},
    ]
    records = [
        record("tfidf", 0.70, 2.0, 0.65),
        record("intentune-minilm-l6", 0.85, 40.0, 0.82, curve),
        record("setfit-minilm-l6", 0.86, 80.0, 0.80),
    ]
    for r in records:
        (tmp_path / f"banking77-10shot__{r['method']}__cpu.json").write_text(json.dumps(r))
    (tmp_path / "suite_quick_cpu.json").write_text(json.dumps(RUN | {"pieces": [], "duration_s": 600, "only": []}))
    return tmp_path


def test_table_rows_ratios_and_published_anchor(results: Path) -> None:
    block = render.render_all(results, write=False)
    lines = block.splitlines()
    assert lines[2].startswith("| task | method | test acc.")
    assert "| banking77-10shot | TF-IDF + logistic regression | 0.7000 | 0.6900 | – | – | 0.6500 | 2.0 | 1x |" in block
    # SetFit's final validation accuracy 0.80 was reached by intentune at 20 s; SetFit took 80 s: ratio 0.25.
    setfit_row = "| SetFit (MiniLM body) | 0.8600 | 0.8500 | – | – | 0.8000 | 80.0 | 40x | 100.0 | 1,000 | 12.0 |"
    assert setfit_row + " 0.25 (minilm-l6) |" in block
    assert "| banking77-10shot | *CPFT (published)* | 0.872 |" in block
    assert "**not** above setfit-minilm-l6; training time no longer than setfit-minilm-l6." in block
    assert "1 pieces" not in block and "0 pieces in 10.0 min" in block


def test_write_block_replaces_only_between_markers(results: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"before\n{render.START}\nold\n{render.END}\nafter\n")
    render.write_block(page, "new table")
    assert page.read_text() == f"before\n{render.START}\nnew table\n{render.END}\nafter\n"


def test_training_time_is_compared_with_the_same_backbones_peers_only() -> None:
    records = [
        record("intentune-minilm-l6", 0.86, 300.0, 0.86),
        record("trainer-minilm-l6", 0.48, 320.0, 0.47),
        record("intentune-smollm2-135m", 0.77, 1800.0, 0.77),
        record("trainer-smollm2-135m", 0.57, 3000.0, 0.59),
        record("setfit-minilm-l6", 0.76, 1000.0, 0.75),
    ]
    lines = render.verdicts("banking77-10shot", records)
    assert lines == [
        "- banking77-10shot, intentune-minilm-l6: accuracy above every peer; training time no longer than "
        "trainer-minilm-l6 and setfit-minilm-l6.",
        # 1,800 s is longer than the encoder's Trainer (320 s) and SetFit (1,000 s), but those train another model.
        "- banking77-10shot, intentune-smollm2-135m: accuracy above every peer; training time no longer than "
        "trainer-smollm2-135m.",
    ]
    slow = [record("intentune-smollm2-135m", 0.77, 3100.0, 0.77), record("trainer-smollm2-135m", 0.57, 3000.0, 0.59)]
    assert "training time **longer** than trainer-smollm2-135m." in render.verdicts("t", slow)[0]
    alone = [record("intentune-smollm2-135m", 0.77, 3100.0, 0.77), record("trainer-minilm-l6", 0.48, 320.0, 0.47)]
    assert "not compared (no SetFit or Trainer piece with smollm2-135m)" in render.verdicts("t", alone)[0]
    # A piece with no peer on its machine is not said to beat them.
    (line,) = render.verdicts("t", [record("intentune-mpnet-base", 0.89, 56.0, 0.88)])
    assert "accuracy not compared (no peer measured on this machine)" in line and "above every peer" not in line


def test_suite_sections_and_only_runs_with_records(results: Path, tmp_path: Path) -> None:
    root = tmp_path / "suites"
    quick = root / "quick"
    quick.mkdir(parents=True)
    for path in results.glob("*.json"):
        (quick / path.name).write_text(path.read_text())
    stale = RUN | {"id": "2026-01-01T00:00:00", "pieces": [], "duration_s": 60, "only": []}
    (quick / "run_quick_cpu_20260101T000000.json").write_text(json.dumps(stale))
    block = render.render_all(root, write=False)
    assert block.startswith("#### Quick suite")
    assert "Full-suite pieces" not in block  # no full/ folder
    assert "2026-11-26T17:00:00" in block and "2026-01-01T00:00:00" not in block  # a run no record comes from


def test_quick_suite_shortens_setfit_only() -> None:
    run = pytest.importorskip("benchmarks.run")
    quick = run.make_job("banking77-5shot/setfit-minilm-l6", "cpu", "quick")
    full = run.make_job("banking77-5shot/setfit-minilm-l6", "cpu", "full")
    assert quick.options == {"num_iterations": 8} and full.options == {}
    assert run.make_job("banking77-5shot/tfidf", "cpu", "quick").options == {}
    assert run.expected_seconds("banking77-5shot/setfit-minilm-l6", "quick") < run.expected_seconds(
        "banking77-5shot/setfit-minilm-l6", "full"
    )


def test_setfit_with_the_mpnet_body_runs_on_the_few_shot_tasks_only() -> None:
    run = pytest.importorskip("benchmarks.run")
    mpnet = [p for p in run.SUITES["full"] if p.endswith("/setfit-mpnet-base")]
    assert sorted(p.split("/")[0] for p in mpnet) == sorted(run.FEW_SHOT_TASKS)
    assert "banking77-full/setfit-mpnet-base" not in run.SUITES["full"]
    job = run.make_job("banking77-5shot/setfit-mpnet-base", "cpu", "full")
    assert (job.method, job.backbone, job.options) == ("setfit", "mpnet-base", {})
    assert run.expected_seconds("banking77-5shot/setfit-mpnet-base") > run.expected_seconds(
        "banking77-5shot/setfit-minilm-l6"
    )


def test_set_changes_intentune_and_the_trainer_follows_its_epochs() -> None:
    run = pytest.importorskip("benchmarks.run")
    sets = ["train.epochs=2", "train.precision=bf16"]
    ours = run.make_job("banking77-full/intentune-smollm2-135m", "cpu", "full", sets)
    trainer = run.make_job("banking77-full/trainer-smollm2-135m", "cpu", "full", sets)
    default = run.make_job("banking77-full/trainer-smollm2-135m", "cpu", "full")
    assert ours.options == {"set": sets}
    assert trainer.options["epochs"] == 2 and default.options["epochs"] != 2
    assert {k: v for k, v in trainer.options.items() if k != "epochs"} == {
        k: v for k, v in default.options.items() if k != "epochs"
    }
    assert run.make_job("banking77-full/tfidf", "cpu", "full", sets).options == {}
    piece = "banking77-full/trainer-smollm2-135m"
    assert run.expected_seconds(piece, "full", ["train.epochs=1"]) < run.expected_seconds(piece, "full")


def test_run_line_shows_the_settings_of_a_run() -> None:
    summary = RUN | {"pieces": ["banking77-10shot/tfidf"], "duration_s": 60, "only": [], "set": ["train.epochs=2"]}
    rows = [record("tfidf", 0.70, 2.0, 0.65)]
    assert "`--set train.epochs=2` (threads: 1)" in render.render(rows, [summary])
    assert "--set" not in render.render(rows, [summary | {"set": []}])


def test_time_to_accuracy_compares_at_the_final_accuracy_precision() -> None:
    # 1,428 of 1,540 right: 0.92727 on the curve (5 decimals), 0.9273 as a final accuracy (4 decimals).
    ours = {"curve": [{"val_accuracy": 0.92338, "elapsed_s": 356.0}, {"val_accuracy": 0.92727, "elapsed_s": 538.0}],
            "train_seconds": 753.0, "validation_accuracy": 0.9234}  # fmt: skip
    assert render.time_to_accuracy(ours, 0.9273) == 538.0
    assert render.time_to_accuracy(ours, 0.9274) is None


def test_piece_env_keeps_an_existing_pythonpath_after_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    run = pytest.importorskip("benchmarks.run")
    monkeypatch.setenv("PYTHONPATH", "/opt/extra-site")
    env = run.piece_env(threads=3)
    parts = env["PYTHONPATH"].split(":")
    assert parts == [str(run.ROOT / "src"), str(run.ROOT), "/opt/extra-site"]
    assert env["OMP_NUM_THREADS"] == "3" and env["HF_HUB_OFFLINE"] == "1"
    monkeypatch.delenv("PYTHONPATH")
    assert run.piece_env()["PYTHONPATH"].split(":") == [str(run.ROOT / "src"), str(run.ROOT)]
    assert run.piece_env().get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")  # not set by the suite


def test_versions_without_an_installed_intentune(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    run = pytest.importorskip("benchmarks.run")
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name in ("intentune", "tokenizers"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    found = run.versions()
    import intentune

    assert found["intentune"] == intentune.__version__ and found["tokenizers"] == "not installed"
    assert found["numpy"] == real("numpy")


def test_one_table_per_machine(tmp_path: Path) -> None:
    xeon = RUN | {"id": "2026-11-27T13:00:00", "machine": RUN["machine"] | {"cpu": "Intel(R) Xeon(R) Processor"}}
    records = [record("intentune-minilm-l6", 0.86, 130.0, 0.87), record("trainer-minilm-l6", 0.43, 256.0, 0.44)]
    records += [r | {"run": xeon} for r in records]
    for r in records:
        name = f"banking77-10shot__{r['method']}__{r['run']['machine']['cpu'].split()[0]}.json"
        (tmp_path / name).write_text(json.dumps(r))
    block = render.render_all(tmp_path, write=False)
    heads = [line for line in block.splitlines() if line.startswith("Device:")]
    assert heads == ["Device: **cpu** (AMD EPYC, 2 cores).", "Device: **cpu** (Intel(R) Xeon(R) Processor, 2 cores)."]
    tables = block.split("Device:")[1:]
    assert all(t.count("| banking77-10shot | **intentune** minilm-l6 |") == 1 for t in tables)


def test_readme_gets_one_table_of_the_machine_with_the_most_tasks(results: Path) -> None:
    other = {**RUN, "machine": {**RUN["machine"], "cpu": "Intel Xeon"}}
    two_tasks = [record("tfidf", 0.6, 1.0, 0.6) | {"run": other},
                 record("tfidf", 0.8, 1.0, 0.8) | {"run": other, "task": "banking77-full", "piece": "x"}]  # fmt: skip
    for i, r in enumerate(two_tasks):
        (results / f"xeon{i}__tfidf__cpu.json").write_text(json.dumps(r))
    block = render.readme_block(results)
    assert block.count("Device: **cpu**") == 1 and "Intel Xeon" in block and "AMD EPYC" not in block
    assert "Runs:" not in block and "benchmarks/RESULTS.md" in block
    assert block.count("| task | method |") == 1


targets = pytest.importorskip("benchmarks.targets")


def test_target_verdicts_say_by_how_much_a_target_is_missed() -> None:
    assert targets.at_least(0.95, 0.95) == "met"
    assert targets.at_least(0.9438, 0.95) == "**missed by 0.62 points**"
    assert targets.both(["met", "met"]) == "met"
    assert targets.both(["**missed by 0.33 points**", "met"]) == "**missed by 0.33 points**; met"


def test_committed_targets_table_is_the_one_the_records_give() -> None:
    text = (Path(targets.ROOT) / "benchmarks" / "RESULTS.md").read_text()
    block = text.split(targets.START, 1)[1].split(targets.END, 1)[0].strip()
    assert block == targets.render()
    assert block.count("\n| ") >= 10  # a row per target, the CPU and GPU measurements of mpnet-base apart


def test_latency_target_row_reads_the_distilled_and_the_alone_student(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("distill_banking77_full.json", "distill_clinc150.json"):
        (tmp_path / name).write_text((targets.RESULTS / name).read_text())
    monkeypatch.setattr(targets, "RESULTS", tmp_path)
    assert len(targets.distill_rows()) == 3  # no latency record: no row
    machine = RUN["machine"]
    for distilled_ms, verdict in ((3.1, "met"), (4.5, "**1.50x slower**")):
        results = [{"model": "runs/x/student-alone/model", "runtime": "onnx-int8", "p50_ms": 3.0},
                   {"model": "runs/x/distilled/model", "runtime": "onnx-int8", "p50_ms": distilled_ms},
                   {"model": "runs/x/distilled/model", "runtime": "torch", "p50_ms": 9.0}]  # fmt: skip
        (tmp_path / "latency_distilled.json").write_text(json.dumps({"machine": machine, "results": results}))
        row = targets.distill_rows()[-1]
        assert row.verdict == verdict
        assert f"p50 {distilled_ms:.2f} ms against 3.00 ms" in row.measured
