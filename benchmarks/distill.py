"""Distillation: an mpnet-base teacher, a minilm-l6 student with and without the teacher.

    .venv/bin/python -m benchmarks.distill [--data 10shot|full|clinc150] [--teacher mpnet-base]
                                           [--student minilm-l6] [--quick] [--render]

Every run goes through the CLI with its defaults, on BANKING77's ``train_10shot.csv`` (770 rows; ``--data full``:
DialoGLUE's 8,622-row training file), DialoGLUE's validation file and the 3,080-row test file (rejected rows count
as wrong); ``--data clinc150``: CLINC150's full training, validation and test files, out-of-scope rows included
(``oos`` is learned as an intent, and the record adds in-scope accuracy and out-of-scope recall):

1. ``teacher``: ``intentune train`` with the teacher backbone;
2. ``student-alone``: ``intentune train`` with the student backbone (the same data, no teacher);
3. ``distilled``: ``intentune distill teacher --student ...`` on the same 770 rows;
4. ``distilled-pool``: the same plus ``--unlabeled``: the rest of BANKING77's ``train.csv`` (its texts, not their
   intents; the validation rows left out), as a team's unlabelled logs would be. Only with ``--data 10shot``: the
   other training files already hold every labelled text.

Writes ``benchmarks/results/distill_banking77.json`` (``--data full``: ``distill_banking77_full.json``,
``--data clinc150``: ``distill_clinc150.json``) after every run; a rerun skips the runs already finished (their run
folders are kept under ``runs/``; ``--only`` makes some of them), so the benchmark can go in pieces; a run folder
that finished while this script was not waiting for it is recorded from the folder, without its wall time, and one
that was stopped part-way (its folder holds a checkpoint, no results) continues from its last checkpoint
(``intentune train|distill ... -o RUN --resume``; its wall time is the resumed part's).
``--quick`` proves the script on a slice (a few rows per intent, a few steps; written under ``runs/``): its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import ROOT, SHARED, first_per_intent, machine, read_rows, relative, run, write_rows

# The files of each --data choice: data set folder, training, validation and test file.
FILES = {
    "10shot": ("banking77", "train_10shot.csv", "dialoglue_split/validation.csv", "test.csv"),
    "full": ("banking77", "dialoglue_split/train.csv", "dialoglue_split/validation.csv", "test.csv"),
    "clinc150": ("clinc150", "train.csv", "validation.csv", "test.csv"),
}
RECORDS = {
    "10shot": "distill_banking77.json",
    "full": "distill_banking77_full.json",
    "clinc150": "distill_clinc150.json",
}
BIN = Path(sys.executable).parent
RUNS = ("teacher", "student-alone", "distilled", "distilled-pool")
# --quick: rows per intent of the training, validation, test and pool files, and optimizer steps per run.
QUICK_ROWS = {"train": 3, "validation": 2, "test": 2, "pool": 4}
QUICK_STEPS = 4


def work_dir(data: str, teacher: str, student: str, *, quick: bool = False) -> Path:
    """The folder under ``runs/`` that holds a ``--data`` choice's data files and run folders."""
    pair = "quick" if quick else f"{teacher}-{student}"
    return ROOT / "runs" / f"bench-distill-{pair}{'' if data == '10shot' else '-' + data}"


def pool_texts(train: list[tuple[str, str]], exclude: list[tuple[str, str]]) -> list[str]:
    """The training file's texts that are in none of the ``exclude`` rows, in file order, each once."""
    taken = {text for text, _ in exclude}
    return list(dict.fromkeys(text for text, _ in train if text not in taken))


def resume_command(command: list[str]) -> list[str]:
    """The command that continues an interrupted run of ``command`` from its last checkpoint: the same command
    (``intentune train`` or ``intentune distill TEACHER``) with ``-o``, ``--resume`` and any ``--unlabeled`` file,
    since the run folder's ``config.toml`` holds its data and settings."""
    head = command[:3] if command[1] == "distill" else command[:2]
    kept = ["--unlabeled", command[command.index("--unlabeled") + 1]] if "--unlabeled" in command else []
    return [*head, "--quiet", *kept, "-o", command[command.index("-o") + 1], "--resume"]


def outcome(run_dir: Path, stats: dict[str, float]) -> dict[str, Any]:
    """A finished run's numbers: its metrics, and the side-by-side record of a distilled run."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = {
        **stats,
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["report"]["macro avg"]["f1-score"], 4),
        "train_rows": metrics["data_sizes"]["train"],
        "train_seconds": metrics["training"]["train_seconds"],
    }
    oos = metrics.get("oos") or {}
    if oos.get("oos_recall") is not None:
        before = oos.get("without_rejection") or {}
        result |= {"in_scope_accuracy": oos["in_scope_accuracy"], "oos_recall": oos["oos_recall"],
                   "in_scope_accuracy_before_rejection": before.get("in_scope_accuracy"),
                   "oos_recall_before_rejection": before.get("oos_recall")}  # fmt: skip
    side_by_side = run_dir / "distill.json"
    if side_by_side.is_file():
        record = json.loads(side_by_side.read_text())
        result |= {"agreement_with_teacher": record["agreement"], "texts": metrics["training"]["distillation"]["texts"],
                   "student": record["student_scores"], "teacher": record["teacher_scores"]}  # fmt: skip
    return result


def markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown table."""
    # Data with out-of-scope rows (CLINC150) adds in-scope accuracy and out-of-scope recall, after and before rejection.
    with_oos = any(r.get("oos_recall") is not None for r in record["results"].values())
    extra = " in-scope acc. | OOS recall | before rejection: in-scope acc. / OOS recall |" if with_oos else ""
    lines = ["| run | backbone | texts trained on | test acc. | macro-F1 |" + extra
             + " same answer as teacher | train s | p50 ms |",
             "|---|---|---:|---:|---:|" + ("---:|" * 3 if with_oos else "") + "---:|---:|---:|"]  # fmt: skip
    # The teacher's latency is measured by the distill runs' comparisons, beside the student's.
    measured = [r["teacher"]["latency_ms_p50"] for r in record["results"].values() if "teacher" in r]
    for name in RUNS:
        r = record["results"].get(name)
        if r is None:
            continue
        backbone = record["teacher"] if name == "teacher" else record["student"]
        agreement = f"{r['agreement_with_teacher']:.4f}" if "agreement_with_teacher" in r else "–"
        latency = r["student"]["latency_ms_p50"] if "student" in r else None
        if name == "teacher" and measured:
            latency = measured[0]
        oos_cells = ""
        if with_oos:
            before = f"{r['in_scope_accuracy_before_rejection']:.4f} / {r['oos_recall_before_rejection']:.4f}"
            oos_cells = f" {r['in_scope_accuracy']:.4f} | {r['oos_recall']:.4f} | {before} |"
        lines.append(f"| {name} | {backbone} | {r.get('texts', r['train_rows']):,} | {r['accuracy']:.4f} "
                     f"| {r['macro_f1']:.4f} |{oos_cells} {agreement} | {r['train_seconds']:.0f} "
                     f"| {latency if latency is not None else '–'} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="mpnet-base")
    parser.add_argument("--student", default="minilm-l6")
    parser.add_argument("--data", choices=tuple(FILES), default="10shot", help="The data set and training file.")
    parser.add_argument("--quick", action="store_true", help="A few rows and steps, to check the script works.")
    parser.add_argument("--out", default=None, help="Default: benchmarks/results/distill_<data>.json (see RECORDS).")
    parser.add_argument("--render", action="store_true", help="Print the table of the record in --out; run nothing.")
    parser.add_argument("--only", nargs="+", choices=RUNS, help="Make only these runs (default: all of them).")
    args = parser.parse_args()
    default_out = ROOT / "benchmarks" / "results" / RECORDS[args.data]
    if args.render:
        print(markdown(json.loads(Path(args.out or default_out).read_text())))
        return
    work = work_dir(args.data, args.teacher, args.student, quick=args.quick)
    out = Path(args.out) if args.out else (work / "distill.json" if args.quick else default_out)
    folder, train_file, validation_file, test_file = FILES[args.data]
    data_dir = SHARED / folder
    rows = {
        "train": read_rows(data_dir / train_file),
        "validation": read_rows(data_dir / validation_file),
        "test": read_rows(data_dir / test_file),
    }
    if args.quick:
        rows = {k: first_per_intent(v, QUICK_ROWS[k]) for k, v in rows.items()}
    files = {k: write_rows(work / "data" / f"{k}.csv", v) for k, v in rows.items()}
    # Only the 10-shot training file leaves labelled texts out, so only it has a pool of unlabelled ones.
    pool: list[str] = []
    if args.data == "10shot":
        full = read_rows(data_dir / "train.csv")
        if args.quick:
            full = first_per_intent(full, QUICK_ROWS["train"] + QUICK_ROWS["validation"] + QUICK_ROWS["pool"])
        pool = pool_texts(full, rows["train"] + rows["validation"] + rows["test"])
        files["pool"] = work / "data" / "pool.txt"
        files["pool"].write_text("\n".join(pool) + "\n", encoding="utf-8")
    sets = ["--set", f"train.max_steps={QUICK_STEPS}"] if args.quick else []
    data = [str(files["train"]), "--validation", str(files["validation"]), "--test", str(files["test"])]
    train = [str(BIN / "intentune"), "train", "--quiet", *sets, *data]
    distill = [str(BIN / "intentune"), "distill", str(work / "teacher"), "--student", args.student, "--quiet", *sets]
    commands = {
        "teacher": [*train, "--backbone", args.teacher, "-o", str(work / "teacher")],
        "student-alone": [*train, "--backbone", args.student, "-o", str(work / "student-alone")],
        "distilled": [*distill, "-o", str(work / "distilled")],
    }
    if pool:
        commands["distilled-pool"] = [*distill, "--unlabeled", str(files["pool"]), "-o", str(work / "distilled-pool")]
    record: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {"results": {}}
    record |= {"benchmark": "distill", "data": args.data, "quick": args.quick,
               "teacher": args.teacher, "student": args.student,
               "rows": {**{k: len(v) for k, v in rows.items()}, "pool": len(pool)},
               "commands": {name: relative(command) for name, command in commands.items()}}  # fmt: skip
    for name, command in commands.items():
        if args.only and name not in args.only:
            continue
        finished = (work / name / "metrics.json").is_file()
        if name in record["results"] and finished:
            print(f"{name}: done before, skipped")
            continue
        if finished:  # finished outside this script (its parent process was stopped): its wall time is not known
            record["results"][name] = outcome(work / name, {}) | {"machine": machine(), "recorded_from_folder": True}
        elif (work / name / "checkpoint").is_dir():  # stopped part-way: continue from its last checkpoint
            stats = run(resume_command(command))
            record["results"][name] = outcome(work / name, stats) | {"machine": machine(), "resumed": True}
        else:
            record["results"][name] = outcome(work / name, run(command)) | {"machine": machine()}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: test accuracy {record['results'][name]['accuracy']}", flush=True)
    print(markdown(record))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
