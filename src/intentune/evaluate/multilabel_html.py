"""A multi-label evaluation (:class:`~intentune.evaluate.multilabel.MultiLabelReport`) as one self-contained HTML
page, and its reliability diagram.

The page follows :mod:`intentune.evaluate.html`: the same style, table sorting and Content-Security-Policy, pictures
as base64 PNG data URIs, and every piece of text that comes from data (utterances, intent names, run details)
escaped.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

from .html import CSP, MAX_ERROR_ROWS, SCRIPT, STYLE, html_cell, html_details, html_table
from .plots import Target

if TYPE_CHECKING:
    from .multilabel_report import MultiLabelReport

# The report's averages, its two kinds of rows and its co-occurrence tables, as both the report and its pages name
# them.
AVERAGES = ("micro avg", "macro avg", "weighted avg", "samples avg")
ROW_KINDS = {"single_intent": "single-intent rows", "multi_intent": "multi-intent rows"}
CO_OCCURRENCE = {  # headings and the "alongside" column of the co-occurrence tables
    "missed": ("Intents missed in wrong rows, beside an intent that was found", "found"),
    "added": ("Intents added in wrong rows, beside a true intent", "true intent"),
}

RELIABILITY_CAPTION = (
    "Every (message, intent) cell as a yes/no prediction: the share of cells that are true against the mean "
    "probability per bin; on the diagonal, intents given probability 0.8 are true 80 % of the time. Marker area "
    "grows with the number of cells in the bin."
)


def plot_cell_reliability(calibration: dict[str, Any], path: Target) -> None:
    """A reliability diagram of the intent cells: per bin the share of true cells against the mean probability,
    with the diagonal of perfect calibration and the ECE in the legend; marker area grows with the bin's count."""
    import numpy as np
    from matplotlib.figure import Figure

    bins = calibration.get("reliability") or []
    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    x, y = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
    counts = np.array([b["count"] for b in bins], dtype=float)
    size = 20 + 180 * np.sqrt(counts / counts.max()) if len(counts) else 40
    ax.plot(x, y, color="tab:blue", linewidth=1, alpha=0.7)
    label = f"intent cells, ECE {calibration['ece']:.3f}" if calibration.get("ece") is not None else "intent cells"
    ax.scatter(x, y, s=size, color="tab:blue", alpha=0.7, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("mean probability in bin")
    ax.set_ylabel("share of true cells in bin")
    ax.set_title("Reliability diagram (per-intent probabilities)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")


def render_multilabel_html(
    report: MultiLabelReport,
    *,
    title: str = "Evaluation report",
    extra: dict[str, Any] | None = None,
    images: dict[str, bytes] | None = None,
) -> str:
    """The report as one self-contained HTML page.

    Sections: warnings, summary numbers, per-intent metrics (weakest first, sortable), row kinds, out of scope,
    co-occurring errors, unanswerable intents, calibration, wrong examples, and the run details.

    Args:
        report: the evaluation.
        title: the page title and heading.
        extra: run details to list at the end (JSON-ready, like ``MultiLabelReport.save``'s ``extra``).
        images: PNG bytes already drawn, by the names of :meth:`MultiLabelReport.figures`; the others are drawn here.
    """
    pictures = dict(images or {})
    for name, draw in report.figures().items():
        if name not in pictures:
            buffer = io.BytesIO()
            draw(buffer)
            pictures[name] = buffer.getvalue()
    sections = [
        ("Per intent", _intent_table(report)),
        ("Single- and multi-intent rows", _row_kinds(report)),
        ("Out of scope", _p(f"Out-of-scope label {report.oos['label']}: {report.oos_text(3)}.")),
        ("Errors that come together", _co_occurrence(report)),
        ("Intents the model was not trained on", _unanswerable(report)),
        ("Calibration", _calibration(report, pictures)),
        ("Wrong examples", _errors(report)),
        ("Run details", html_details(extra) if extra else ""),
    ]
    warnings = [f'<p class="warn"><strong>Warning:</strong> {html.escape(w)}</p>' for w in report.warnings]
    body = [f"<h1>{html.escape(title)}</h1>", *warnings, _summary(report)]
    body += [f"<section>\n<h2>{html.escape(h)}</h2>\n{content}\n</section>" for h, content in sections if content]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _p(text: str, kind: str = "") -> str:
    attr = f' class="{kind}"' if kind else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def _summary(report: MultiLabelReport) -> str:
    numbers = [
        ("subset accuracy", f"{report.accuracy:.3f}"),
        ("micro F1", f"{report.report['micro avg']['f1-score']:.3f}"),
        ("macro F1", f"{report.report['macro avg']['f1-score']:.3f}"),
        ("Hamming loss", f"{report.hamming_loss:.3f}"),
        ("examples", str(report.support)),
        ("wrong", str(len(report.errors))),
    ]
    if (multi := report.by_row_kind.get("multi_intent")) is not None:
        numbers.append(("multi-intent subset accuracy", f"{multi['subset_accuracy']:.3f}"))
    recall = report.oos["recall"]
    numbers.append(("OOS recall", "cannot be measured" if recall is None else f"{recall:.3f}"))
    if report.calibration is not None:
        numbers.append(("ECE (intent cells)", f"{report.calibration['ece']:.3f}"))
    cards = "".join(
        f'<div class="card"><div class="v">{html.escape(v)}</div><div class="k">{html.escape(k)}</div></div>'
        for k, v in numbers
    )
    return f'<div class="cards">{cards}</div>'


def _intent_table(report: MultiLabelReport) -> str:
    """Precision, recall, F1, support (and threshold) per intent, weakest F1 first, then the averages."""
    r, thresholds = report.report, report.thresholds
    order = sorted(report.classes, key=lambda x: (r[x]["support"] == 0, r[x]["f1-score"], x))
    rows = []
    for name in order:
        # F1 0.5 or less red, 0.75 yellow, 1 green.
        shade = f"background:hsl({max(0.0, 240 * r[name]['f1-score'] - 120):.0f},65%,88%)" if r[name]["support"] else ""
        cells = [html_cell(name), html_cell(r[name]["precision"]), html_cell(r[name]["recall"])]
        cells += [html_cell(r[name]["f1-score"], shade), html_cell(r[name]["support"])]
        rows.append(cells + ([html_cell(thresholds.get(name))] if thresholds is not None else []))
    headers = ["intent", "precision", "recall", "F1", "support", *(["threshold"] if thresholds is not None else [])]
    averages = [
        [html_cell(name)] + [html_cell(r[name][k]) for k in ("precision", "recall", "f1-score")] for name in AVERAGES
    ]
    note = _p("Weakest F1 first; click a column header to sort by it. Support: messages with the intent.", "note")
    return (
        note + html_table(headers, rows, sortable=True) + html_table(["average", "precision", "recall", "F1"], averages)
    )


def _row_kinds(report: MultiLabelReport) -> str:
    rows = []
    for kind, name in ROW_KINDS.items():
        if (r := report.by_row_kind.get(kind)) is not None:
            rows.append(
                [html_cell(name), html_cell(r["rows"]), html_cell(r["subset_accuracy"]), html_cell(r["micro_f1"])]
            )
    return html_table(["rows", "count", "subset accuracy", "micro F1"], rows) if rows else ""


def _co_occurrence(report: MultiLabelReport) -> str:
    parts = []
    for kind, (title, column) in CO_OCCURRENCE.items():
        if pairs := report.co_occurrence[kind]:
            rows = [[html_cell(p["intent"]), html_cell(p["alongside"]), html_cell(p["count"])] for p in pairs]
            parts.append(f"<h3>{html.escape(title)}</h3>\n" + html_table(["intent", column, "count"], rows))
    return "\n".join(parts)


def _unanswerable(report: MultiLabelReport) -> str:
    if not report.unanswerable:
        return ""
    rows = [[html_cell(intent), html_cell(n)] for intent, n in report.unanswerable.items()]
    return _p("No answer gets their rows right; they count as wrong.", "note") + html_table(["intent", "rows"], rows)


def _calibration(report: MultiLabelReport, pictures: dict[str, bytes]) -> str:
    cal = report.calibration
    if cal is None:
        return ""
    text = _p(
        f"Expected calibration error over {cal['cells']} (message, intent) cells, each a yes/no prediction with its "
        f"probability ({cal['bins']} equal-width bins): {cal['ece']:.3f}."
    )
    if "reliability" not in pictures:
        return text
    data = base64.b64encode(pictures["reliability"]).decode("ascii")
    image = f'<img alt="reliability" src="data:image/png;base64,{data}">'
    return f"{text}\n<figure>{image}<figcaption>{html.escape(RELIABILITY_CAPTION)}</figcaption></figure>"


def _errors(report: MultiLabelReport) -> str:
    errors = report.errors
    if not errors:
        return _p("No wrong examples.", "note")
    shown = errors[:MAX_ERROR_ROWS]
    if len(errors) > len(shown):
        note = f"The first {len(shown):,} of {len(errors):,} wrong examples; errors.jsonl has all of them."
    else:
        note = f"All {len(errors):,} wrong examples (also in errors.jsonl)."
    rows = []
    for e in shown:
        text = html.escape("" if e.get("text") is None else str(e["text"]))
        probabilities = ", ".join(f"{k} {v:.3f}" for k, v in (e.get("probabilities") or {}).items())
        rows.append(
            [
                f'<td class="t">{text}</td>',
                html_cell(e["true"]),
                html_cell(e["predicted"]),
                html_cell(", ".join(e["missed"])),
            ]
            + [html_cell(", ".join(e["added"])), html_cell(probabilities)]
        )
    headers = ["text", "true intents", "predicted", "missed", "added", "highest probabilities"]
    return _p(note, "note") + "\n" + html_table(headers, rows, sortable=True)
