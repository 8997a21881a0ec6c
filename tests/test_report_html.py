"""report.html as a browser shows it: headless Chromium renders the page to a PNG, which must not be blank.

Chromium comes from `make install` (Debian's `chromium` package); without it this test fails, on purpose, unless
INTENTUNE_SKIP_BROWSER=1 is set.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from intentune import evaluate_predictions

from conftest import find_chromium

pytestmark = pytest.mark.browser

INTENTS = ["greeting", "goodbye", "order_status", "product_info", "refund", "oos"]


def _report():
    """120 fixed predictions over six intents (about 12 % wrong), with hand-written calibration and OOS results."""
    rng = np.random.default_rng(7)
    true = [INTENTS[i % 6] for i in range(120)]
    pred = [t if rng.random() > 0.12 else INTENTS[(INTENTS.index(t) + 1) % 6] for t in true]
    right = np.array(true) == np.array(pred)
    confidences = np.round(np.where(right, rng.uniform(0.6, 1.0, 120), rng.uniform(0.3, 0.9, 120)), 4)
    texts = [f"message {i} from a <b>customer</b>" for i in range(120)]
    report = evaluate_predictions(true, pred, INTENTS, texts=texts, confidences=confidences)
    report.confidences, report.correct = confidences, right
    bins = [(0.3, 0.4, 4, 0.36, 0.25), (0.5, 0.6, 10, 0.56, 0.5), (0.7, 0.8, 30, 0.75, 0.8), (0.9, 1.0, 76, 0.95, 0.93)]
    reliability = [dict(zip(("lower", "upper", "count", "confidence", "accuracy"), b)) for b in bins]
    after = [{**b, "confidence": round(b["confidence"] * 0.93, 4)} for b in reliability]
    report.calibration = {
        "temperature": 1.42,
        "bins": 10,
        "ece_before": 0.061,
        "ece_after": 0.024,
        "reliability_before": reliability,
        "reliability_after": after,
    }
    curve = [
        {"threshold": t / 20, "coverage": round(1 - (t / 20) ** 3, 4), "accuracy": round(0.88 + 0.1 * t / 20, 4)}
        for t in range(21)
    ]
    report.oos = {
        "label": "oos",
        "threshold": {"global": 0.55, "per_intent": {"refund": 0.6}},
        "in_scope_support": 100,
        "oos_support": 20,
        "in_scope_accuracy": 0.89,
        "oos_precision": 0.8,
        "oos_recall": 0.7,
        "oos_f1": 0.747,
        "without_rejection": {"in_scope_accuracy": 0.9, "oos_precision": 0.9, "oos_recall": 0.45, "oos_f1": 0.6},
        "coverage_curve": curve,
    }
    return report


def test_report_html_renders_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    chromium = find_chromium()
    page = _report().save(tmp_path / "eval", extra={"evaluated_on": "test"})["html"]
    shot = tmp_path / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    command = [chromium, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000"]
    result = subprocess.run([*command, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists(), f"chromium wrote no screenshot: {result.stderr.decode(errors='replace')[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    not_white = float((pixels.min(axis=2) < 240).mean())
    assert colours > 200, f"only {colours} distinct colours: the page looks blank"
    assert not_white > 0.05, f"only {not_white:.1%} of the pixels are not white: the page looks blank"
