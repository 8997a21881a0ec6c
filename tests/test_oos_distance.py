"""The out-of-scope distance score: the Mahalanobis distance against an independent computation, thresholds on
it fitted and chosen from validation data, and a model that rejects by distance saved, loaded, exported to ONNX
and evaluated (tiny backbones)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from intentune import IntentClassifier, ModelError, evaluate_classifier
from intentune.evaluate.oos import DistanceModel, Thresholds, apply_rejection
from intentune.evaluate.thresholds import KEEP_MARGIN, fit_thresholds
from intentune.export import export_model
from intentune.folder import DISTANCE_FILE
from intentune.inference import OnnxPredictor, load_predictor
from test_oos import CLASSES, probs_for

from conftest import tiny_config, toy_data


def clusters(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """Two intents in 5 dimensions: means at +-3 on the first axis, unit noise; ``n`` rows each."""
    a = rng.normal(size=(n, 5)) + [3, 0, 0, 0, 0]
    b = rng.normal(size=(n, 5)) - [3, 0, 0, 0, 0]
    return np.concatenate([a, b]), ["a"] * n + ["b"] * n


def test_distance_is_the_mahalanobis_distance_to_the_nearest_mean() -> None:
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(0)
    x, y = clusters(rng, 200)
    rows = np.concatenate([x, rng.normal(size=(3, 5)) * 10])  # 3 rows far from both intents
    labels = [*y, "oos", "oos", "oos"]
    model = DistanceModel.fit(rows, labels, "oos")  # the oos rows take no part
    means = np.stack([x[:200].mean(0), x[200:].mean(0)])
    covariance, _ = ledoit_wolf(x - np.repeat(means, 200, axis=0), assume_centered=True)
    precision = np.linalg.inv(covariance)
    probes = np.array([[3.0, 0, 0, 0, 0], [-3.0, 1, 0, 0, 0], [0.0, 0, 0, 0, 0], [0, 0, 0, 0, 8.0]])
    expected = [
        np.sqrt(min((p - m) @ precision @ (p - m) for m in means) / 5) for p in probes
    ]  # fmt: skip
    np.testing.assert_allclose(model.distances(probes), expected, rtol=1e-4)
    typical = model.distances(x)
    assert 0.6 < np.median(typical) < 1.2  # about 1 for a typical training row
    assert model.distances(probes[3:])[0] > typical.max()
    again = DistanceModel.from_arrays(model.to_arrays())
    np.testing.assert_array_equal(again.distances(probes), model.distances(probes))


def test_few_rows_in_many_dimensions_still_give_finite_distances() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 64))  # 3 intents x 2 rows, 64 dimensions: the sample covariance is singular
    model = DistanceModel.fit(x, ["a", "a", "b", "b", "c", "c"], "oos")
    d = model.distances(rng.normal(size=(10, 64)))
    assert np.isfinite(d).all() and (d > 0).all()


def overconfident_oos() -> tuple[np.ndarray, list[str], np.ndarray]:
    """100 right in-scope answers (confidence 0.7-1.0, distance 0.5-1.5) and 10 out-of-scope rows the classifier
    is sure of (0.99) but that lie far away (distance 3-4): only the distance can catch them."""
    rng = np.random.default_rng(2)
    conf = [*rng.uniform(0.7, 1.0, 100), *[0.99] * 10]
    intents = ["a", "b"] * 50 + ["a"] * 10
    true = ["a", "b"] * 50 + ["oos"] * 10
    distances = np.array([*rng.uniform(0.5, 1.5, 100), *rng.uniform(3.0, 4.0, 10)])
    return probs_for(intents, conf), true, distances


def test_auto_picks_the_distance_when_it_catches_more() -> None:
    probs, true, distances = overconfident_oos()
    fitted = fit_thresholds(
        probs, true, CLASSES, max_accuracy_drop=0.02, budget_confidence=0.0, distances=distances, per_intent="off"
    )
    assert fitted.score == "distance" and fitted.fit["score"] == "distance"
    assert fitted.fit["candidates"]["global"]["oos_recall"] == 0.0
    assert fitted.fit["candidates"]["distance_global"]["oos_recall"] == 1.0
    # Budget floor(0.02 * 100) = 2 right answers: the threshold is the third-largest in-scope distance.
    third = np.sort(distances[:100])[-3]
    assert fitted.global_threshold == pytest.approx(third * (1 + KEEP_MARGIN), rel=1e-9)  # a hair above it
    answers, _, out = apply_rejection(CLASSES, probs, fitted, "oos", distances)
    assert out[100:].all() and out[:100].sum() == 2
    with pytest.raises(ValueError, match="distances"):
        apply_rejection(CLASSES, probs, fitted, "oos")
    assert Thresholds.from_dict(fitted.to_dict()) == fitted


def test_the_confidence_stays_without_out_of_scope_rows_or_when_asked() -> None:
    probs, true, distances = overconfident_oos()
    chosen = fit_thresholds(probs, true, CLASSES, distances=distances, score="confidence")
    assert chosen.score == "confidence" and "distance_global" not in chosen.fit["candidates"]
    in_scope = fit_thresholds(probs[:100], true[:100], CLASSES, distances=distances[:100])
    assert in_scope.score == "confidence"  # nothing shows the distance catches more
    forced = fit_thresholds(probs[:100], true[:100], CLASSES, distances=distances[:100], score="distance")
    assert forced.score == "distance"
    with pytest.raises(ValueError, match="needs the validation rows' distances"):
        fit_thresholds(probs, true, CLASSES, score="distance")
    with pytest.raises(ValueError, match="unknown out-of-scope score"):
        fit_thresholds(probs, true, CLASSES, score="energy")


@pytest.fixture(scope="module", params=["tiny_encoder", "tiny_decoder"])
def distance_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    """A tiny model of each kind fitted with ``oos.score = "distance"``, saved and exported to ONNX (float and
    int8; the decoder's graph comes from torch.export, the encoder's is fused)."""
    texts, labels = toy_data()
    val = (texts[:8] + ["what is the meaning of life", "tell me a joke"], labels[:8] + ["oos", "oos"])
    config = tiny_config(request.getfixturevalue(request.param), epochs=3)
    config.oos.score = "distance"
    clf = IntentClassifier(config).fit(texts, labels, validation=val)
    assert clf.thresholds.score == "distance" and clf.distance_ is not None
    assert clf.train_summary_["oos"]["score"] == "distance"
    folder = clf.save(tmp_path_factory.mktemp("distance") / "model")
    export_model(folder, quantize="int8")
    return folder, *val


def test_a_distance_model_saves_loads_and_answers_the_same(distance_model) -> None:
    folder, texts, labels = distance_model
    assert (folder / DISTANCE_FILE).is_file()
    clf = IntentClassifier.load(folder)
    probs, distances = clf.scores(texts)
    assert distances is not None and distances.shape == (len(texts),) and (distances > 0).all()
    expected = apply_rejection(clf.classes_, probs, clf.thresholds, "oos", distances)[0]
    assert clf.predict(texts) == expected
    assert [d["is_out_of_scope"] for d in clf.predict_details(texts)] == [a == "oos" for a in expected]
    # A threshold below every distance rejects everything; the report sees the same answers as predict.
    clf.thresholds_ = Thresholds("oos", float(distances.min()) / 2, score="distance")
    assert clf.predict(texts) == ["oos"] * len(texts)
    report = evaluate_classifier(clf, texts, labels)
    assert report.oos["oos_recall"] == 1.0 and report.oos["in_scope_accuracy"] == 0.0
    assert report.oos["threshold"]["score"] == "distance"
    # The coverage curve sweeps the distance (the score the model rejects by), from the smallest in-scope one.
    in_scope = np.array([y != "oos" for y in labels])
    curve = report.oos["coverage_curve"]
    assert report.oos["coverage_score"] == "distance"
    assert curve[0]["threshold"] == pytest.approx(float(distances[in_scope].min()), abs=1e-4)
    assert curve[-1]["coverage"] == 1.0 and curve[0]["coverage"] < 1.0
    assert "distance from the nearest intent above" in report.to_markdown()
    assert clf.describe()["oos_score"] == "distance"


def test_onnx_runtimes_reject_by_distance_like_pytorch(distance_model) -> None:
    folder, texts, _ = distance_model
    torch_clf = IntentClassifier.load(folder)
    _, expected = torch_clf.scores(texts)
    onnx = OnnxPredictor.load(folder)
    _, got = onnx.scores(texts, batch_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    # The fitted threshold is one of these texts' own distances: compare the answers away from it.
    tops = [d["top"][0]["intent"] for d in torch_clf.predict_details(texts)]
    limits = torch_clf.thresholds.for_intents(tops)
    clear = np.abs(expected - limits) > 1e-3 * limits
    assert clear.sum() >= len(texts) - 2
    agree = [a == b for a, b in zip(onnx.predict(texts), torch_clf.predict(texts))]
    assert all(np.array(agree)[clear])
    int8 = load_predictor(folder, runtime="onnx-int8")
    assert int8.scores(texts)[1] is not None
    assert onnx.scores([])[1].shape == (0,)


def test_a_missing_distance_file_or_old_export_is_a_clear_error(distance_model, tmp_path: Path) -> None:
    import onnx

    folder, _, _ = distance_model
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    (copy / DISTANCE_FILE).unlink()
    with pytest.raises(ModelError, match=DISTANCE_FILE):
        IntentClassifier.load(copy)
    old = Path(shutil.copytree(folder, tmp_path / "old"))
    graph = onnx.load(str(old / "onnx" / "model.onnx"))
    kept = [o for o in graph.graph.output if o.name == "logits"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(old / "onnx" / "model.onnx"))
    with pytest.raises(ModelError, match="no 'pooled' output.*export it again"):
        OnnxPredictor.load(old)


def test_auto_fits_the_distance_only_with_out_of_scope_validation_rows(tiny_encoder: Path) -> None:
    """Without validation out-of-scope rows (and without the stand-ins, see test_rejection_budget.py) nothing
    can show that the distance catches more, so it is not even fitted."""
    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=2)
    config.oos.outlier_exposure = "off"
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert clf.thresholds.score == "confidence" and clf.distance_ is None
    assert "distance_global" not in clf.train_summary_["oos"]["candidates"]
