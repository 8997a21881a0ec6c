"""The rejection budget on unseen rows: the binomial bound behind the fitted threshold, its cost on a large fresh
sample against the old validation-only fit, reports on data without out-of-scope rows, and the bundled stand-in
out-of-scope sentences (outlier exposure)."""

from __future__ import annotations

import fnmatch
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from intentune import IntentClassifier, evaluate_classifier
from intentune.evaluate import evaluate_logits, render_html
from intentune.evaluate.oos import OUTLIERS, Thresholds, outlier_texts
from intentune.evaluate.thresholds import allowed_rejections, budget_summary, fit_thresholds

from conftest import ROOT, tiny_config, toy_data

K = 10
CLASSES = [f"i{k}" for k in range(K)]


def binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize(("rows", "budget"), [(350, 0.01), (700, 0.01), (1000, 0.01), (300, 0.02), (48, 0.1)])
def test_allowed_rejections_is_the_largest_count_the_binomial_bound_allows(rows: int, budget: float) -> None:
    k, met = allowed_rejections(rows, budget, 0.9)
    assert met and binomial_cdf(k, rows, budget) <= 0.1
    assert k == math.floor(budget * rows) or binomial_cdf(k + 1, rows, budget) > 0.1
    assert allowed_rejections(rows, budget, 0.0) == (math.floor(budget * rows + 1e-9), True)  # validation alone
    summary = budget_summary(rows, budget, 0.9)
    assert summary["allowed_rejections"] == k and summary["expected_cost"] == round((k + 1) / (rows + 1), 6)
    assert summary["cost_bound"] <= budget  # the Clopper-Pearson bound of the chosen count is within the budget


def test_too_few_rows_for_the_bound_keep_every_right_answer() -> None:
    # 0.99 ** 100 = 0.37 > 0.1: even a threshold that rejects no right validation answer may overspend one point.
    assert allowed_rejections(100, 0.01, 0.9) == (0, False)
    assert allowed_rejections(100, 0.0, 0.9) == (0, False)
    assert budget_summary(100, 0.01, 0.9)["met"] is False and budget_summary(100, 0.01, 0.9)["cost_bound"] > 0.01


def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """``n`` in-scope rows of 10 intents: the arg-max is right with probability 0.93, the top probability of a
    right answer is 0.15 + 0.85 Beta(6, 1), of a wrong one uniform in [0.15, 0.9]."""
    true = rng.integers(0, K, n)
    right = rng.random(n) < 0.93
    predicted = np.where(right, true, (true + rng.integers(1, K, n)) % K)
    conf = np.where(right, 0.15 + 0.85 * rng.beta(6, 1, n), rng.uniform(0.15, 0.9, n))
    probs = np.repeat(((1 - conf) / (K - 1))[:, None], K, axis=1)
    probs[np.arange(n), predicted] = conf
    return probs, [CLASSES[t] for t in true]


def test_the_bounded_threshold_keeps_the_budget_on_fresh_rows_where_the_old_one_overspends() -> None:
    """300 validation rows, a two-point budget, 40 seeds; each threshold's cost measured on 200,000 fresh rows
    of the same distribution. Fitted to cost two points on the validation rows themselves (budget_confidence 0,
    the old fit), the threshold costs more than two points on fresh rows in most seeds; with the binomial bound
    (the default 0.9) in at most about one seed in ten."""
    budget, seeds = 0.02, 40
    fresh_probs, fresh_true = sample(np.random.default_rng(1_000_000), 200_000)
    right = np.array(CLASSES)[fresh_probs.argmax(axis=1)] == np.array(fresh_true)
    top = fresh_probs.max(axis=1)
    costs: dict[float, list[float]] = {0.0: [], 0.9: []}
    for seed in range(seeds):
        probs, true = sample(np.random.default_rng(seed), 300)
        for confidence in costs:
            fitted = fit_thresholds(
                probs, true, CLASSES, max_accuracy_drop=budget, budget_confidence=confidence, per_intent="off"
            )
            costs[confidence].append(float((right & (top < fitted.global_threshold)).mean()))
    old, new = np.array(costs[0.0]), np.array(costs[0.9])
    assert (old > budget).sum() >= seeds // 2  # the old fit overspends in most seeds
    assert (new <= budget).sum() >= 0.85 * seeds  # the new one keeps the budget in most seeds
    assert old.mean() > budget > new.mean()
    assert (new <= old).all()  # the bound only ever lowers the threshold


# Four intents, no out-of-scope rows; rejection below 0.5 turns one right answer for a into oos (see
# test_evaluate.py): in-scope accuracy 1.0 -> 8/9, 8 of 9 in-scope rows answered.
NO_OOS_CLASSES, NO_OOS_TRUE = list("abcd"), list("aaabbccdd")
NO_OOS_LOGITS = np.array([[0.1, 0, 0, 0]] + [[8.0 if c == y else 0.0 for c in "abcd"] for y in NO_OOS_TRUE[1:]])


def test_reports_say_recall_cannot_be_measured_without_out_of_scope_rows(tmp_path: Path) -> None:
    fit = {"outlier_exposure": {"rows": 400, "dropped_matching": 3}}
    thresholds = Thresholds("oos", 0.5, fit=fit)
    report = evaluate_logits(NO_OOS_LOGITS, NO_OOS_TRUE, NO_OOS_CLASSES, thresholds=thresholds)
    oos = report.oos
    assert oos is not None and oos["oos_measurable"] is False and oos["oos_support"] == 0
    assert oos["oos_recall"] is None and oos["oos_precision"] is None and oos["without_rejection"]["oos_f1"] is None
    assert oos["coverage"] == pytest.approx(8 / 9, abs=1e-6)
    assert oos["accuracy_drop"] == pytest.approx(1 / 9, abs=1e-6) and oos["stand_in_oos_rows"] == 400
    text = report.to_text()
    assert "out of scope (oos): OOS recall cannot be measured: the data has no oos rows" in text
    assert "rejection cost: 88.9% of in-scope rows answered, in-scope accuracy 1.000 -> 0.889 (drop 0.111)" in text
    assert "400 stand-in out-of-scope sentences" in text and "recall 0.000" not in text
    markdown = report.to_markdown()
    assert "9 in-scope examples; OOS recall cannot be measured: the data has no oos rows." in markdown
    assert "| with rejection | 0.889 |" in markdown and "OOS recall |" not in markdown
    data = json.loads(report.to_json())
    assert data["oos"]["oos_recall"] is None and data["oos"]["oos_measurable"] is False
    page = render_html(report)
    assert "cannot be measured" in page and "88.9%" in page and "400 stand-in" in page
    assert "<th>OOS recall</th>" not in page
    # With out-of-scope rows the numbers are there, and the stand-in sentence only when stand-ins were used.
    true = ["oos", *NO_OOS_TRUE[1:]]
    measured = evaluate_logits(NO_OOS_LOGITS, true, NO_OOS_CLASSES, thresholds=Thresholds("oos", 0.5))
    assert measured.oos["oos_recall"] == 1.0 and measured.oos["oos_measurable"] is True
    assert "cannot be measured" not in measured.to_text() and "stand-in" not in measured.to_text()
    assert "<th>OOS recall</th>" in render_html(measured)


def test_the_stand_in_sentences_ship_with_the_package() -> None:
    from importlib.resources import files

    raw = files("intentune").joinpath(OUTLIERS).read_text(encoding="utf-8")
    assert raw.startswith("# Stand-in out-of-scope sentences") and "Apache License 2.0" in raw[:1000]
    texts, dropped = outlier_texts()
    assert dropped == 0 and 300 <= len(texts) <= 500 and len(set(texts)) == len(texts)
    assert not any(t.startswith("#") for t in texts)
    # The wheel takes the file: pyproject's package data names it.
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert any(fnmatch.fnmatch(OUTLIERS, p) for p in patterns["package-data"]["intentune"])


def test_stand_ins_matching_a_labelled_text_are_dropped() -> None:
    texts, dropped = outlier_texts(["Tell me a JOKE!", "what's the weather like today?", "an order question"])
    assert dropped == 2
    assert "tell me a joke" not in texts and "what's the weather like today" not in texts
    assert "tell me a knock knock joke" in texts  # only a matching text goes, not a similar one


def test_outlier_exposure_chooses_with_stand_ins_and_records_them(tiny_encoder: Path) -> None:
    """Validation without out-of-scope rows: with ``auto`` the stand-ins (less the one that is a training text)
    join the threshold fit as out-of-scope rows, the distance is fitted to compete, and the model's metadata and
    report say so; with ``off`` nothing of that happens."""
    texts, labels = toy_data()
    texts, labels = [*texts, "tell me a joke"], [*labels, "greeting"]  # a stand-in sentence as a training row
    total = len(outlier_texts()[0])
    clf = IntentClassifier(tiny_config(tiny_encoder, epochs=2)).fit(texts, labels, validation=(texts, labels))
    fit = clf.thresholds.fit
    assert fit["outlier_exposure"] == {"rows": total - 1, "dropped_matching": 1}
    assert fit["oos_rows"] == total - 1 and fit["in_scope_rows"] == len(texts)
    assert "distance_global" in fit["candidates"] and "held_out" in fit
    assert clf.train_summary_["oos"]["outlier_exposure"]["rows"] == total - 1
    assert clf.metadata()["oos_thresholds"]["fit"]["outlier_exposure"]["dropped_matching"] == 1
    clf.thresholds_ = Thresholds(clf.thresholds.label, 1.0, fit=fit, score="confidence")  # rejects everything
    report = evaluate_classifier(clf, texts, labels)
    assert report.oos["stand_in_oos_rows"] == total - 1 and f"{total - 1} stand-in" in report.to_text()
    config = tiny_config(tiny_encoder, epochs=2)
    config.oos.outlier_exposure = "off"
    plain = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert "outlier_exposure" not in plain.thresholds.fit and plain.thresholds.fit["oos_rows"] == 0


def test_too_few_rows_for_the_budget_are_named_with_the_rows_it_would_take() -> None:
    from intentune.evaluate.oos import fit_notes
    from intentune.evaluate.thresholds import budget_summary

    small, large = budget_summary(32, 0.01, 0.9), budget_summary(400, 0.01, 0.9)
    assert small["met"] is False and small["rows_needed"] == 230  # 0.99 ** 230 <= 0.1 < 0.99 ** 229
    assert large["met"] is True and "rows_needed" not in large
    assert budget_summary(230, 0.01, 0.9)["met"] is True and budget_summary(229, 0.01, 0.9)["met"] is False
    (note,) = fit_notes({"budget": small})
    assert note.startswith("32 in-scope validation rows are too few") and "about 230 validation rows" in note
    assert fit_notes({"budget": large}) == [] and fit_notes({}) == []
