"""Render the peer suite's results (``benchmarks/results/suite/*.json``) as a Markdown table, with the published
anchors in the same table, and write it between the ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers
of ``benchmarks/RESULTS.md``. ``README.md`` gets one table between its markers: the full-suite pieces of the machine
that has the most tasks (:func:`readme_block`), with a link to RESULTS.md for the rest.

    .venv/bin/python -m benchmarks.render [--results DIR] [--print]

Times are compared as ratios within one run (the machines are shared and noisy): each method's training time
divided by TF-IDF's in the same run, and intentune's time to a peer's final validation accuracy divided by the
peer's time to it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, reached

RESULTS = ROOT / "benchmarks" / "results" / "suite"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TASK_ORDER = ("banking77-full", "banking77-10shot", "banking77-5shot", "clinc150-oos", "clinc150-10shot")
METHOD_NAMES = {
    "tfidf": "TF-IDF + logistic regression",
    "intentune-minilm-l6": "**intentune** minilm-l6",
    "intentune-smollm2-135m": "**intentune** smollm2-135m",
    "intentune-mpnet-base": "**intentune** mpnet-base",
    "setfit-minilm-l6": "SetFit (MiniLM body)",
    "setfit-mpnet-base": "SetFit (MPNet body)",
    "trainer-minilm-l6": "HF `Trainer` minilm-l6",
    "trainer-smollm2-135m": "HF `Trainer` smollm2-135m",
}
# Published anchors and the targets the project's issues name; shown in the table, never measured here.
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "banking77-full": [{"method": "target named in the training issue (published)", "accuracy": 0.937}],
    "banking77-10shot": [{"method": "CPFT (published)", "accuracy": 0.872}],
    "clinc150-oos": [
        {"method": "BERT, `oos` as an intent (Larson et al. 2019, published)", "in_scope_accuracy": 0.969,
         "oos_recall": 0.403},
        {"method": "target named in the evaluation issue", "in_scope_accuracy": 0.96, "oos_recall": 0.80,
         "note": ">= both"},
    ],
}  # fmt: skip
COLUMNS = [
    "task", "method", "test acc.", "macro-F1", "in-scope acc.", "OOS recall", "val. acc.", "train s",
    "train time / TF-IDF's", "examples/s", "peak MiB", "p50 ms", "intentune's time to this val. acc. / this",
]  # fmt: skip


SECTIONS = {
    "quick": "Quick suite (`--suite quick`: BANKING77 5-shot; SetFit draws 8 pair iterations per example here, 20 in "
    "the full suite)",
    "full": "Full-suite pieces (`--suite full --only ...`, the paper settings for every method)",
}  # fmt: skip


def load_records(results: Path) -> list[dict[str, Any]]:
    """The piece records in ``results`` (the run summaries ``run_*.json`` / ``suite_*.json`` excluded)."""
    return [json.loads(p.read_text()) for p in sorted(results.glob("*__*.json"))]


def load_summaries(results: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summaries of the runs that at least one record in ``records`` still comes from."""
    ids = {r["run"]["id"] for r in records}
    found = [json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.name.startswith(("run_", "suite_"))]
    return [s for s in found if s["id"] in ids]


def time_to_accuracy(intentune: dict[str, Any], target: float) -> float | None:
    """Seconds until intentune's validation accuracy first reached ``target`` (None if it never did)."""
    for point in intentune.get("curve", []):
        if reached(point["val_accuracy"], target):
            return point["elapsed_s"]
    return intentune["train_seconds"] if reached(intentune["validation_accuracy"], target) else None


def backbone_of(method: str) -> str | None:
    """The backbone in a method label (``trainer-smollm2-135m`` -> ``smollm2-135m``); None for TF-IDF."""
    return method.split("-", 1)[1] if "-" in method else None


def ratios(records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per method label: training time / TF-IDF's, and intentune's time to the peer's accuracy / the peer's."""
    by_method = {r["method"]: r for r in records if "error" not in r}
    baseline = by_method.get("tfidf")
    out: dict[str, dict[str, str]] = {}
    for label, r in by_method.items():
        base = r.get("tfidf_train_seconds_same_run")
        if base is None and baseline is not None and baseline["run"]["id"] == r["run"]["id"]:
            base = baseline["train_seconds"]
        row = {"vs_tfidf": f"{r['train_seconds'] / base:,.0f}x" if base else "–"}
        ours = by_method.get(f"intentune-{backbone_of(label) or 'minilm-l6'}")
        row["tta"] = "–"
        if ours is not None and not label.startswith("intentune"):
            seconds = time_to_accuracy(ours, r["validation_accuracy"])
            which = ours["method"].split("-", 1)[1] + ("" if ours["run"]["id"] == r["run"]["id"] else "; other run")
            row["tta"] = (f"{seconds / r['time_to_final_val_accuracy_s']:.2f} ({which})"
                          if seconds is not None else f"not reached ({which})")  # fmt: skip
        out[label] = row
    return out


def fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def task_rows(task: str, records: list[dict[str, Any]]) -> list[str]:
    """The table rows of one task: measured methods first (in METHOD_NAMES order), then the published ones."""
    rows, extra = [], ratios(records)
    order = list(METHOD_NAMES)
    for r in sorted(records, key=lambda r: order.index(r["method"]) if r["method"] in order else 99):
        name = METHOD_NAMES.get(r["method"], r["method"])
        if "error" in r:
            rows.append(f"| {task} | {name} | failed: {r['error']} |" + " |" * (len(COLUMNS) - 3))
            continue
        m, p = r["metrics"], r["process"]
        rows.append("| " + " | ".join([
            task, name, fmt(m["accuracy"]), fmt(m["macro_f1"]), fmt(m["in_scope_accuracy"]), fmt(m["oos_recall"]),
            fmt(r["validation_accuracy"]), f"{r['train_seconds']:,.1f}", extra[r["method"]]["vs_tfidf"],
            f"{r['train_examples_per_s']:,.1f}", f"{p['peak_rss_mib']:,.0f}", f"{r['latency_ms']['p50']:.1f}",
            extra[r["method"]]["tta"],
        ]) + " |")  # fmt: skip
    for anchor in PUBLISHED.get(task, []):
        note = anchor.get("note", "")
        cells = [task, f"*{anchor['method']}*", fmt(anchor.get("accuracy"), 3), "–",
                 fmt(anchor.get("in_scope_accuracy"), 3), fmt(anchor.get("oos_recall"), 3)]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " | " + " | ".join(["not measured here", *["–"] * 5, note]) + " |")
    return rows


def verdicts(task: str, records: list[dict[str, Any]]) -> list[str]:
    """Whether each intentune row beats every peer's test accuracy, at a training time no longer than SetFit's
    and the Trainer's with the same backbone (a decoder's training time says nothing against an encoder's)."""
    done = [r for r in records if "error" not in r]
    peers = [r for r in done if not r["method"].startswith("intentune")]
    lines = []
    for ours in (r for r in done if r["method"].startswith("intentune")):
        key = "in_scope_accuracy" if ours["metrics"]["in_scope_accuracy"] is not None else "accuracy"
        better = [p["method"] for p in peers if ours["metrics"][key] <= p["metrics"][key]]
        timed = [p for p in peers if p["method"].startswith(("setfit", "trainer"))
                 and backbone_of(p["method"]) == backbone_of(ours["method"])]  # fmt: skip
        slower = [p["method"] for p in timed if ours["train_seconds"] > p["train_seconds"]]
        if not peers:
            accuracy = "not compared (no peer measured on this machine)"
        else:
            accuracy = "above every peer" if not better else f"**not** above {', '.join(better)}"
        if not timed:
            speed = f"not compared (no SetFit or Trainer piece with {backbone_of(ours['method'])})"
        elif slower:
            speed = f"**longer** than {', '.join(slower)}"
        else:
            speed = f"no longer than {' and '.join(p['method'] for p in timed)}"
        lines.append(f"- {task}, {ours['method']}: {key.replace('_', ' ')} {accuracy}; training time {speed}.")
    return lines


def machine_of(record: dict[str, Any]) -> tuple[str, str]:
    """The device and machine a record was measured on (``("cpu", "AMD EPYC, 2 cores")``): one table each, since
    times and speed ratios from different machines do not compare."""
    machine = record["run"]["machine"]
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu", "none") != "none" else ""
    return record["run"]["device"], f"{machine['cpu']}, {machine['cores']} cores{gpu}"


def render(records: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> str:
    """The Markdown block: one table per device and machine, the verdicts against the targets, and the runs'
    provenance."""
    lines: list[str] = []
    for device, machine in sorted({machine_of(r) for r in records}):
        on_device = [r for r in records if machine_of(r) == (device, machine)]
        lines += [f"Device: **{device}** ({machine}).", "", "| " + " | ".join(COLUMNS) + " |",
                  "|---|---|" + "---:|" * (len(COLUMNS) - 2)]  # fmt: skip
        checks: list[str] = []
        for task in [t for t in TASK_ORDER if any(r["task"] == t for r in on_device)]:
            in_task = [r for r in on_device if r["task"] == task]
            lines += task_rows(task, in_task)
            checks += verdicts(task, in_task)
        lines += ["", "Against the targets (intentune's accuracy above every peer's, at a training time no longer "
                  "than SetFit's and the Trainer's with the same backbone):", "", *checks, ""]  # fmt: skip
    lines += ["Runs:", ""]
    for s in summaries:
        mach, v = s["machine"], s["versions"]
        lines.append(
            f"- `--suite {s['suite']} --device {s['device']}`{' --only ' + ' '.join(s['only']) if s['only'] else ''}"
            + "".join(f" `--set {kv}`" for kv in s.get("set", []))
            + f" (threads: {s.get('threads', 'default')}): {len(s['pieces'])} pieces in {s['duration_s'] / 60:.1f} "
            f"min; {s['id']}, commit {mach['commit']}; {mach['cpu']}, {mach['cores']} cores, GPU {mach['gpu']}; "
            f"Python {mach['python']}, torch {mach['torch']}, transformers {mach['transformers']}, "
            + ", ".join(f"{k} {val}" for k, val in v.items())
            + (f". Note: {s['note']}" if s.get("note") else "")
        )
    return "\n".join(lines)


def write_block(path: Path, block: str, start: str = START, end: str = END) -> None:
    """Replace what is between the markers ``start`` and ``end`` in ``path`` with ``block``."""
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} ... {end} markers to write the table between")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{start}\n{block}\n{end}", text, count=1))


def readme_block(results: Path = RESULTS) -> str:
    """README's one table: the full-suite pieces (else the quick suite) measured on the machine with the most tasks
    (then the most rows), with its verdicts, and a pointer to RESULTS.md for the other machines and the runs."""
    folder = next((results / n for n in ("full", "quick") if (results / n).is_dir()), results)
    records = load_records(folder)
    if not records:
        return "No benchmark results yet: see [benchmarks/RESULTS.md](benchmarks/RESULTS.md)."
    by_machine: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by_machine.setdefault(machine_of(record), []).append(record)
    chosen = max(by_machine.values(), key=lambda rows: (len({r["task"] for r in rows}), len(rows)))
    table = render(chosen, []).removesuffix("Runs:\n").rstrip()
    pointer = "Other machines, the quick suite and each run's commit and versions: [benchmarks/RESULTS.md]"
    return f"{table}\n\n{pointer}(benchmarks/RESULTS.md)."


def render_all(results: Path = RESULTS, *, write: bool = True) -> str:
    """Render the results in ``results`` (a section per suite folder in it, or the records in the folder itself);
    write them into RESULTS.md, and README's one table (:func:`readme_block`) into README.md, unless ``write`` is
    False."""
    parts = []
    folders = [(results / name, title) for name, title in SECTIONS.items() if (results / name).is_dir()]
    for folder, title in folders or [(results, "")]:
        records = load_records(folder)
        if records:
            parts.append((f"#### {title}\n\n" if title else "") + render(records, load_summaries(folder, records)))
    block = "\n\n".join(parts)
    if write:
        write_block(ROOT / "benchmarks" / "RESULTS.md", block)
        write_block(ROOT / "README.md", readme_block(results))
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--print", action="store_true", help="print the block instead of writing the files")
    args = parser.parse_args()
    block = render_all(args.results, write=not args.print)
    if args.print:
        print(block)


if __name__ == "__main__":
    main()
