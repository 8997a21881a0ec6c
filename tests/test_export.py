"""ONNX export and the ONNX Runtime predictor: parity with PyTorch for both backbone kinds, int8, calibration and
rejection honoured, runtime choice, atomic writes, errors, and the CLI."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentune import ConfigError, DataError, IntentClassifier, ModelError
from intentune.cli import app
from intentune.evaluate.oos import Thresholds
from intentune.export import export_model
from intentune.inference import OnnxPredictor, load_predictor

from conftest import toy_data

runner = CliRunner()

# Mixed lengths (one word to past max_length, so truncated), unseen words, and the training texts: with
# batch_size=3 every batch is padded on the right to its own longest text.
TEXTS = [
    "hi",
    "where is my order, it was due last week and the tracking number shows nothing at all since monday",
    "price",
    "bye bye see you",
    " ".join(["parcel"] * 80),
    "do you have the red jacket in size 44 or 46",
    *toy_data()[0],
]


@pytest.fixture(scope="module", params=["decoder", "encoder"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model of each kind with ``onnx/model.onnx`` and ``onnx/model.int8.onnx``."""
    clf = request.getfixturevalue(f"fitted_{request.param}")
    folder = clf.save(tmp_path_factory.mktemp(f"onnx-{request.param}") / "model")
    export_model(folder, quantize="int8")
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_onnx_probabilities_match_pytorch(exported: Path) -> None:
    torch_clf = IntentClassifier.load(exported)
    onnx = OnnxPredictor.load(exported)
    expected = torch_clf.predict_proba(TEXTS, batch_size=3)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS, batch_size=3), expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), expected, atol=1e-4, rtol=0)  # one batch of all
    single = np.concatenate([onnx.predict_proba([t]) for t in TEXTS[:6]])
    np.testing.assert_allclose(single, expected[:6], atol=1e-4, rtol=0)
    assert onnx.predict(TEXTS) == torch_clf.predict(TEXTS)
    assert onnx.classes_ == torch_clf.classes_


def test_int8_predictions_mostly_agree(exported: Path) -> None:
    expected = IntentClassifier.load(exported).predict_proba(TEXTS)
    int8 = OnnxPredictor.load(exported, quantized=True).predict_proba(TEXTS)
    # Measured on these 30 texts: every answer the same, probabilities within 0.01 (encoder) and 2e-5 (decoder).
    agreeing = int((int8.argmax(axis=1) == expected.argmax(axis=1)).sum())
    assert agreeing >= len(TEXTS) - 1, agreeing
    assert np.abs(int8 - expected).max() < 0.05


def test_int8_answers_do_not_depend_on_the_batch(exported: Path) -> None:
    """A dynamically quantized graph shares one activation scale across the rows of a batch; the predictor runs the
    int8 graph one text at a time, so each text gets the same probabilities alone, in a batch, and with the
    pooled vectors requested."""
    int8 = OnnxPredictor.load(exported, quantized=True)
    alone = np.concatenate([int8.predict_proba([text]) for text in TEXTS])
    assert np.array_equal(int8.predict_proba(TEXTS), alone)
    assert np.array_equal(int8.predict_proba(TEXTS[::-1], batch_size=7)[::-1], alone)
    _, pooled = int8.forward(TEXTS, pooled=True)
    assert pooled is not None and pooled.shape[0] == len(TEXTS)
    np.testing.assert_array_equal(pooled[3], int8.forward([TEXTS[3]], pooled=True)[1][0])


def test_onnx_predictor_honours_temperature_and_thresholds(exported: Path, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    meta = json.loads((folder / "intentune.json").read_text())
    probs = IntentClassifier.load(folder).predict_proba(TEXTS)
    # A threshold between the confidences, so that some answers are rejected and some are not.
    meta["temperature"] = 1.7
    meta["oos_thresholds"] = Thresholds("oos", float(np.median(probs.max(axis=1))), {"goodbye": 0.99}).to_dict()
    (folder / "intentune.json").write_text(json.dumps(meta))
    torch_details = IntentClassifier.load(folder).predict_details(TEXTS, top_k=3)
    onnx_details = OnnxPredictor.load(folder).predict_details(TEXTS, top_k=3)
    assert [d["intent"] for d in onnx_details] == [d["intent"] for d in torch_details]
    assert [d["is_out_of_scope"] for d in onnx_details] == [d["is_out_of_scope"] for d in torch_details]
    assert any(d["is_out_of_scope"] for d in onnx_details) and not all(d["is_out_of_scope"] for d in onnx_details)
    for o, t in zip(onnx_details, torch_details):
        assert abs(o["confidence"] - t["confidence"]) <= 2e-4
        assert [x["intent"] for x in o["top"]] == [x["intent"] for x in t["top"]]
    described = OnnxPredictor.load(folder, quantized=True).describe()
    assert described["runtime"] == "onnx-int8" and described["temperature"] == 1.7
    assert OnnxPredictor.load(folder).describe()["runtime"] == "onnx"


def test_load_predictor_picks_the_runtime(exported: Path, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    assert load_predictor(folder).describe()["runtime"] == "onnx-int8"
    assert load_predictor(folder, runtime="onnx").describe()["runtime"] == "onnx"
    assert load_predictor(folder, runtime="torch").describe()["runtime"] == "torch"
    (folder / "onnx" / "model.int8.onnx").unlink()
    assert load_predictor(folder).describe()["runtime"] == "onnx"
    with pytest.raises(ModelError, match=r"no onnx/model.int8.onnx; run `intentune export .* --quantize int8`"):
        load_predictor(folder, runtime="onnx-int8")
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        load_predictor(folder, runtime="onnx", device="cuda")
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'; choose one of auto, torch, onnx, onnx-int8"):
        load_predictor(folder, runtime="tensorrt")
    shutil.rmtree(folder / "onnx")
    assert load_predictor(folder).describe()["runtime"] == "torch"
    with pytest.raises(ModelError, match=r"no onnx/model.onnx; run `intentune export .* --format onnx`"):
        load_predictor(folder, runtime="onnx")


def test_export_writes_only_finished_files(exported: Path) -> None:
    assert sorted(p.name for p in (exported / "onnx").iterdir()) == ["export.json", "model.int8.onnx", "model.onnx"]
    assert not [p.name for p in exported.iterdir() if p.name.startswith(".")]  # no temporary folders left
    info = json.loads((exported / "onnx" / "export.json").read_text())
    assert info["format"] == "onnx" and info["quantized"] == "int8" and info["opset"] >= 17
    assert {"torch", "onnx", "onnxruntime", "intentune"} <= set(info["versions"])
    assert info["int8_method"].startswith("weight-only" if info["kind"] == "decoder" else "dynamic")
    assert info["parity"] is None


def test_encoders_get_a_fused_graph_decoders_torch_export(exported: Path) -> None:
    info = json.loads((exported / "onnx" / "export.json").read_text())
    if info["kind"] == "encoder":  # the tiny BERT: 2 layers, each one Attention and two SkipLayerNormalization nodes
        assert info["graph"]["exporter"].startswith("TorchScript") and info["opset"] == 17
        assert info["graph"]["fused"]["Attention"] == 2 and info["graph"]["fused"]["SkipLayerNormalization"] == 4
        import onnx

        ops = [node.op_type for node in onnx.load(str(exported / "onnx" / "model.onnx")).graph.node]
        # Segment ids traced as zeros of the input's shape, not BERT's buffered zeros sliced and expanded.
        assert ops.count("EmbedLayerNormalization") == 1
        assert not {"Expand", "GatherElements", "Where", "Equal"} & set(ops), ops
    else:
        assert info["graph"] == {"exporter": "torch.export (dynamo)", "fused": {}} and info["opset"] == 20


def test_fusion_logs_nothing_below_warning(
    fitted_encoder: IntentClassifier, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = fitted_encoder.save(tmp_path / "model")
    with caplog.at_level(logging.DEBUG):
        info = export_model(folder).info
    assert info["graph"]["fused"]["Attention"] == 2
    noise = [r.getMessage() for r in caplog.records if not r.name.startswith("intentune")]
    assert noise == [] and logging.root.manager.disable == logging.NOTSET


def test_an_encoder_without_fusion_patterns_falls_back_to_torch_export(
    fitted_encoder: IntentClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fitted_encoder.save(tmp_path / "model")
    monkeypatch.setattr("intentune.onnx_graph.FUSABLE_ENCODERS", ())
    info = export_model(folder).info
    assert info["graph"]["exporter"] == "torch.export (dynamo)" and info["opset"] == 20
    np.testing.assert_allclose(
        OnnxPredictor.load(folder).predict_proba(TEXTS), fitted_encoder.predict_proba(TEXTS), atol=1e-4, rtol=0
    )


def test_a_failed_export_leaves_the_previous_one(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(exported, tmp_path)
    before = (folder / "onnx" / "model.onnx").read_bytes()

    def fail(classifier: object, path: Path) -> None:
        path.write_bytes(b"half a model")
        raise ModelError("cannot export backbone: simulated")

    monkeypatch.setattr("intentune.export.export_graph", fail)
    with pytest.raises(ModelError, match="simulated"):
        export_model(folder)
    assert (folder / "onnx" / "model.onnx").read_bytes() == before
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_export_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist; train one with `intentune train`"):
        export_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="is not an intentune model folder"):
        export_model(tmp_path / "empty")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'; formats: onnx"):
        export_model(tmp_path / "empty", fmt="tflite")
    with pytest.raises(ConfigError, match="unknown quantization 'int4'; choose int8 or none"):
        export_model(tmp_path / "empty", quantize="int4")


def test_export_refuses_other_folders_and_bad_check_files_before_exporting(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="dist exists and is not a model folder; give a new or empty folder"):
        export_model(exported, output_dir=tmp_path / "dist")
    assert (tmp_path / "dist" / "keep.txt").is_file()
    before = (exported / "onnx" / "model.onnx").stat().st_mtime_ns
    with pytest.raises(DataError, match="missing.csv: file not found"):
        export_model(exported, check_file=tmp_path / "missing.csv")
    assert (exported / "onnx" / "model.onnx").stat().st_mtime_ns == before


def test_a_damaged_onnx_file_is_a_model_error(exported: Path, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    (folder / "onnx" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        OnnxPredictor.load(folder)
    # It predicts only: a runner in ONNX Runtime, no fit or save to refuse (not a subclass of the classifier).
    int8 = OnnxPredictor.load(folder, quantized=True)
    assert not hasattr(int8, "fit") and not hasattr(int8, "save") and not isinstance(int8, IntentClassifier)
    assert int8.runtime_ == "onnx-int8" and int8.describe()["runtime"] == "onnx-int8"


def test_cli_export_to_a_deployable_folder_with_a_parity_check(
    fitted_encoder: IntentClassifier, toy_files: Path, tmp_path: Path
) -> None:
    model = fitted_encoder.save(tmp_path / "model")
    texts, _ = toy_data()
    deploy = tmp_path / "deploy"
    args = ["export", str(model), "--format", "onnx", "-o", str(deploy), "--check", str(toy_files / "train.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "parity with PyTorch on" in result.output and "| onnx | " in result.output
    assert not (model / "onnx").exists()
    assert sorted(p.name for p in (deploy / "onnx").iterdir()) == ["export.json", "model.onnx"]
    assert not list(deploy.glob("*.safetensors")) and (deploy / "intentune.json").is_file()
    card = (deploy / "README.md").read_text()  # the model card speaks of the ONNX-only folder it is in
    assert "load_predictor" in card and "onnx" in card.split("---")[1]
    parity = json.loads((deploy / "onnx" / "export.json").read_text())["parity"]
    assert parity["rows"] == 24 and parity["onnx"]["agreement"] == 1.0 and parity["onnx"]["max_abs_prob_diff"] < 1e-4
    assert parity["onnx"]["accuracy"] == parity["torch"]["accuracy"]
    predictor = load_predictor(deploy)
    assert predictor.describe()["runtime"] == "onnx"
    assert predictor.predict(texts) == fitted_encoder.predict(texts)
    with pytest.raises(ModelError, match="holds only an ONNX export"):
        load_predictor(deploy, runtime="torch")
    result = runner.invoke(app, ["predict", str(deploy), "hello there", "--runtime", "onnx", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["intent"] == fitted_encoder.predict(["hello there"])[0]
    result = runner.invoke(app, ["export", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "error: " in result.output and "does not exist" in result.output


@pytest.mark.parametrize("kind", ["decoder", "encoder"])
def test_quantization_leaves_logging_as_it_was(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """onnxruntime's weight-only quantizer (decoders) calls logging.basicConfig(level=INFO) when imported and logs a
    line per node it skips; its dynamic quantizer (encoders) logs through logging.info(), which gives a root logger
    without handlers a stderr one. An export in a fresh process must leave the root logger alone and print none of
    that. The model is fitted and saved here; only the export runs in the fresh process."""
    model = request.getfixturevalue(f"fitted_{kind}").save(tmp_path / "model")
    script = f"""
import logging
from intentune.export import export_model
export_model({str(model)!r}, quantize="int8")
root = logging.getLogger()
print("ROOT", len(root.handlers), logging.getLevelName(root.level))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ROOT 0 WARNING" in done.stdout
    assert "skip to quantize" not in done.stderr and "[INFO]" not in done.stderr, done.stderr[-2000:]
    assert (tmp_path / "model" / "onnx" / "model.int8.onnx").is_file()
