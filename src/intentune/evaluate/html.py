"""The evaluation report as one self-contained HTML page.

No external resources: pictures are embedded as base64 PNG data URIs, the style and the few lines of table
sorting are inline, and a Content-Security-Policy forbids loading anything else. Every piece of text that comes
from data (utterances, intent names, run details) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import TYPE_CHECKING, Any

from .oos import NOT_MEASURABLE, cost_text, fit_notes, is_measurable

if TYPE_CHECKING:
    from .report import EvalReport

MAX_ERROR_ROWS = 1000

CAPTIONS = {
    "confusion_matrix": "Rows: true intent, columns: predicted; each row normalised by the true intent's count.",
    "confidence_histogram": "How sure the model was of its right and of its wrong predictions.",
    "reliability": "Accuracy against mean confidence per bin; on the diagonal, answers given with confidence 0.8 "
    "are right 80 % of the time. Marker area grows with the number of predictions in the bin.",
    "coverage": "One global rejection threshold swept over the in-scope messages, on the score the model rejects "
    "by (the confidence, or the distance): the share answered (coverage) and the accuracy on the answered ones.",
}

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;
background:#fff;max-width:1100px;margin:0 auto;padding:1.5rem;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#e8e8e8}
td.t{max-width:42rem;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:.75rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;min-width:7.5rem}
.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#666;font-size:.85rem}
figure{margin:1rem 0}img{max-width:100%;height:auto}figcaption,.note{color:#666;font-size:.88rem}
pre{margin:0;font-size:.8rem;white-space:pre-wrap}.scroll{max-height:36rem;overflow:auto;display:inline-block}
.warn{background:#fff4d6;border-left:4px solid #d9a300;padding:.5rem 1rem;margin:.5rem 0}
"""

# Click a header to sort by that column (numbers numerically), click again to reverse.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.up !== "1";
  const key = r => { const t = r.cells[col].textContent, x = parseFloat(t); return isNaN(x) ? t : x; };
  const rows = [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
  th.dataset.up = up ? "1" : "0"; body.append(...rows);
}));
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render_html(
    report: EvalReport,
    *,
    title: str = "Evaluation report",
    extra: dict[str, Any] | None = None,
    images: dict[str, bytes] | None = None,
) -> str:
    """The report as one self-contained HTML page.

    Sections: warnings (unknown intents), summary numbers, per-intent metrics (weakest first, sortable), confusion
    matrix and most confused pairs, confidence histogram, calibration, out of scope, misclassified examples, and
    the run details.

    Args:
        report: the evaluation.
        title: the page title and heading.
        extra: run details to list at the end (JSON-ready, like ``EvalReport.save``'s ``extra``).
        images: PNG bytes already drawn, by the names of :meth:`EvalReport.figures`; the others are drawn here.

    Returns:
        The HTML document.
    """
    pictures = _draw_missing(report, images or {})
    sections = [
        ("Per intent", _intent_table(report)),
        ("Confusion matrix", _figure("confusion_matrix", pictures) + _pairs(report)),
        ("Confidence", _figure("confidence_histogram", pictures)),
        ("Calibration", _calibration(report) + _figure("reliability", pictures) if report.calibration else ""),
        ("Out of scope", _oos(report) + _figure("coverage", pictures) if report.oos else ""),
        ("Misclassified examples", _errors(report)),
        ("Run details", html_details(extra) if extra else ""),
    ]
    warnings = [f'<p class="warn"><strong>Warning:</strong> {html.escape(w)}</p>' for w in report.warnings]
    body = [f"<h1>{html.escape(title)}</h1>", *warnings, _summary(report)]
    body += [_section(heading, content) for heading, content in sections if content]
    return _page(title, "\n".join(body))


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _draw_missing(report: EvalReport, images: dict[str, bytes]) -> dict[str, bytes]:
    pictures = {}
    for name, draw in report.figures().items():
        if name in images:
            pictures[name] = images[name]
        else:
            buffer = io.BytesIO()
            draw(buffer)
            pictures[name] = buffer.getvalue()
    return pictures


def _section(heading: str, content: str) -> str:
    return f"<section>\n<h2>{html.escape(heading)}</h2>\n{content}\n</section>"


def _figure(name: str, pictures: dict[str, bytes]) -> str:
    if name not in pictures:
        return ""
    data = base64.b64encode(pictures[name]).decode("ascii")
    image = f'<img alt="{name.replace("_", " ")}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>"


def html_cell(value: Any, style: str = "") -> str:
    """One table cell: numbers right-aligned (floats with 3 decimals), everything else escaped text."""
    attr = f' style="{style}"' if style else ""
    if isinstance(value, float):
        return f'<td class="n"{attr}>{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n"{attr}>{value}</td>'
    return f"<td{attr}>{html.escape('' if value is None else str(value))}</td>"


def html_table(headers: list[str], rows: list[list[str]], *, sortable: bool = False) -> str:
    """A table from header names and rows of ready-made cells (see :func:`html_cell`)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    kind = ' class="sortable"' if sortable else ""
    table = f"<table{kind}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    return f'<div class="scroll">{table}</div>' if len(rows) > 25 else table


def _summary(report: EvalReport) -> str:
    numbers = [
        ("accuracy", f"{report.accuracy:.3f}"),
        ("macro F1", f"{report.report['macro avg']['f1-score']:.3f}"),
        ("weighted F1", f"{report.report['weighted avg']['f1-score']:.3f}"),
        ("examples", str(report.support)),
        ("misclassified", str(len(report.errors))),
    ]
    if report.oos:
        numbers += [("in-scope accuracy", f"{report.oos['in_scope_accuracy']:.3f}")]
        recall = report.oos.get("oos_recall")
        numbers += [("OOS recall", "cannot be measured" if recall is None else f"{recall:.3f}")]
        if report.oos.get("coverage") is not None:
            numbers += [("in-scope answered", f"{report.oos['coverage']:.1%}")]
    if report.calibration:
        numbers += [("ECE (calibrated)", f"{report.calibration['ece_after']:.3f}")]
    cards = "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{k}</div></div>' for k, v in numbers)
    return f'<div class="cards">{cards}</div>'


def _intent_table(report: EvalReport) -> str:
    """Precision, recall, F1 and support per intent, weakest F1 first (intents absent from the data last)."""
    order = sorted(report.labels, key=lambda x: (report.report[x]["support"] == 0, report.report[x]["f1-score"], x))
    rows = []
    for name in order:
        r = report.report[name]
        # F1 0.5 or less red, 0.75 yellow, 1 green.
        shade = f"background:hsl({max(0.0, 240 * r['f1-score'] - 120):.0f},65%,88%)" if r["support"] else ""
        cells = [html_cell(name), html_cell(r["precision"]), html_cell(r["recall"]), html_cell(r["f1-score"], shade)]
        rows.append([*cells, html_cell(r["support"])])
    note = "Weakest F1 first; click a column header to sort by it."
    if report.averages_leave_out:
        note += f" Macro and weighted averages leave out {', '.join(report.averages_leave_out)}."
    note = f'<p class="note">{html.escape(note)}</p>'
    return note + html_table(["intent", "precision", "recall", "F1", "support"], rows, sortable=True)


def _pairs(report: EvalReport) -> str:
    pairs = report.confused_pairs(top=20)
    if not pairs:
        return '<p class="note">No confusions.</p>'
    support = {name: report.report[name]["support"] for name in report.labels}
    rows = [
        [html_cell(t), html_cell(p), html_cell(n), html_cell(n / support[t] if support[t] else None)]
        for t, p, n in pairs
    ]
    table = html_table(["true intent", "predicted as", "count", "share of true intent"], rows)
    return "<h3>Most confused pairs</h3>\n" + table


def _calibration(report: EvalReport) -> str:
    cal = report.calibration or {}
    t = f"{cal['temperature']:.3f}"
    rows = [[html_cell("raw (T = 1)"), html_cell(float(cal["ece_before"]))]]
    rows.append([html_cell(f"calibrated (T = {t})"), html_cell(float(cal["ece_after"]))])
    text = f"Temperature scaling with T = {t}; expected calibration error over {cal['bins']} equal-width bins:"
    return f"<p>{html.escape(text)}</p>\n" + html_table(["probabilities", "ECE"], rows)


def _oos(report: EvalReport) -> str:
    """The out-of-scope numbers with and without rejection; without out-of-scope rows in the data, only the
    in-scope ones and a sentence saying recall cannot be measured."""
    oos = report.oos or {}
    measured = (("with rejection", oos), ("without rejection", oos["without_rejection"]))
    if is_measurable(oos):
        keys = ("in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1")
        headers = ["", "in-scope accuracy", "OOS precision", "OOS recall", "OOS F1"]
        intro = f"{oos['in_scope_support']} in-scope and {oos['oos_support']} out-of-scope examples."
    else:
        keys, headers = ("in_scope_accuracy",), ["", "in-scope accuracy"]
        intro = f"{oos['in_scope_support']} in-scope examples; {NOT_MEASURABLE.format(label=oos['label'])}."
    rows = [[html_cell(name)] + [html_cell(float(r[k])) for k in keys] for name, r in measured]
    table = html_table(headers, rows)
    paragraphs = [f"Out-of-scope label {oos['label']}: {intro}"]
    after = [f"Rejection cost: {cost}." for cost in [cost_text(oos, 3)] if cost]
    after.append(f"Rejection thresholds: {report.thresholds_text(3)}.")
    after += [note[0].upper() + note[1:] + "." for note in fit_notes(oos)]
    text = "\n".join(f"<p>{html.escape(p)}</p>" for p in after)
    return f"<p>{html.escape(paragraphs[0])}</p>\n{table}\n{text}"


def _errors(report: EvalReport) -> str:
    errors = report.errors
    if not errors:
        return '<p class="note">No misclassified examples.</p>'
    shown = errors[:MAX_ERROR_ROWS]
    if len(errors) > len(shown):
        note = f"The {len(shown):,} most confident of {len(errors):,} errors; errors.jsonl has all of them."
    else:
        note = f"All {len(errors):,} errors, most confident first (also in errors.jsonl)."
    rows = []
    for e in shown:
        text = html.escape("" if e.get("text") is None else str(e["text"]))
        rows.append(
            [f'<td class="t">{text}</td>', html_cell(e["true"]), html_cell(e["predicted"]), html_cell(e["confidence"])]
        )
    headers = ["text", "true intent", "predicted", "confidence"]
    return f'<p class="note">{html.escape(note)}</p>\n' + html_table(headers, rows, sortable=True)


def html_details(extra: dict[str, Any]) -> str:
    """A two-column table of run details; lists and dicts shown as indented JSON."""
    rows = []
    for key, value in extra.items():
        if isinstance(value, dict | list):
            text = html.escape(json.dumps(value, indent=1, ensure_ascii=False, default=str))
            rows.append([html_cell(key), f"<td><pre>{text}</pre></td>"])
        else:
            rows.append([html_cell(key), html_cell(value)])
    return html_table(["detail", "value"], rows)
