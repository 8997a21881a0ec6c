"""A model that started from another (``intentune train --init-from``) set beside the one it started from: both
evaluated on the test rows whose intent the old model knows, compared intent by intent, and written into the new
run folder as ``compare_with_previous.json`` and ``.md``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import write_file_atomic
from ..data import Examples
from .compare import Comparison, compare_metrics
from .metrics import evaluate_classifier
from .report import EvalReport

if TYPE_CHECKING:
    from ..extend import PreviousModel

logger = logging.getLogger(__name__)

COMPARE_FILE = "compare_with_previous"  # .json and .md in the new run folder


def compare_with_previous(
    previous: PreviousModel, classifier: Any, test: Examples, report: EvalReport, out: Path, *, max_drop: float = 0.05
) -> Comparison | None:
    """Evaluate the old and the new model on the test rows whose intent the old model knows (its intents, and the
    out-of-scope label when it rejects), compare them intent by intent (:func:`intentune.evaluate.compare
    .compare_metrics`), and write ``compare_with_previous.json`` and ``.md`` into ``out``.

    Rows of the new intents are left out (the old model cannot answer them; counting them as its errors would
    only say that it lacks them); their F1 from the new model's ``report`` is listed beside the comparison.

    Returns:
        The comparison, or None when no test row has an intent the old model knows.
    """
    oos = classifier.config.oos.label
    known = set(previous.classes) | ({oos} if previous.classifier.thresholds_ is not None else set())
    keep = [i for i, label in enumerate(test.labels) if label in known]
    if not keep:
        logger.info("no test row has an intent of %s: no comparison with it", previous.path)
        return None
    rows = test.subset(keep)
    previous.classifier.net_.to(next(classifier.net_.parameters()).device)  # where the new model runs (a GPU)
    old = evaluate_classifier(previous.classifier, rows.texts, rows.labels).to_dict()
    new = evaluate_classifier(classifier, rows.texts, rows.labels).to_dict()
    comparison = compare_metrics(old, new, max_drop=max_drop, names=(f"previous ({previous.path})", "new"))
    added = [c for c in classifier.classes_ if c not in set(previous.classes)]
    record = {
        **comparison.to_dict(),
        "previous_model_id": previous.model_id,
        "test_file": test.source,
        "rows_compared": len(rows),
        "rows_left_out": dict(sorted(Counter(y for y in test.labels if y not in known).items())),
        "new_intents_f1": {c: report.report.get(c, {}).get("f1-score") for c in added},
    }
    write_file_atomic(out / f"{COMPARE_FILE}.json", json.dumps(record, indent=2) + "\n")
    new_lines = [f"- `{c}`: F1 {f1:.4f}" if f1 is not None else f"- `{c}`: no test rows"
                 for c, f1 in record["new_intents_f1"].items()]  # fmt: skip
    text = (
        f"# Compared with the previous model\n\nPrevious: `{previous.path}` (model id `{previous.model_id}`). "
        f"Both models on the {len(rows)} rows of `{test.source}` whose intent the previous model knows "
        f"({len(test) - len(rows)} rows of other intents left out).\n\n```\n{comparison.to_text()}\n```\n"
    )
    text += "\n## New intents (whole test file)\n\n" + "\n".join(new_lines) + "\n" if new_lines else ""
    write_file_atomic(out / f"{COMPARE_FILE}.md", text)
    return comparison
