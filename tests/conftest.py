"""Shared fixtures: tiny random backbones (a Llama-style decoder and a BERT encoder, hidden 32, 2 layers) with
tokenizers trained locally, so tests need no download and run in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from intentune import Config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Where the tiny models train and predict: cpu (CI), or cuda to run the same suite on a GPU machine.
DEVICE = os.environ.get("INTENTUNE_TEST_DEVICE", "cpu")

# The tiny models' matrices are too small to gain from several threads, and threads that wait on each other cost
# the most on a busy 2-core machine; so tests run torch on one thread (processes they start inherit it through
# OMP_NUM_THREADS), except the `bundled` tests, which train real backbones on every core (see the fixture below)
# when the suite runs in one process; pytest-xdist's workers inherit OMP_NUM_THREADS=1, so there every test has one.
ALL_THREADS = torch.get_num_threads()
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _threads(request: pytest.FixtureRequest):
    """Every core for the tests that load the real bundled backbones, one thread for the rest."""
    if request.node.get_closest_marker("bundled") is None:
        yield
        return
    torch.set_num_threads(ALL_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(1)


# A small, clearly separable training set: each intent has its own words.
TOY = {
    "greeting": ["hello there", "hi friend", "good morning", "hey hello", "hi there hello", "morning hi"],
    "goodbye": ["bye now", "see you later", "goodbye friend", "bye bye", "see you soon", "farewell bye"],
    "order_status": [
        "where is my order",
        "track my parcel",
        "order not arrived",
        "parcel tracking number",
        "when will my order arrive",
        "my order is late",
    ],
    "product_info": [
        "price of the shoes",
        "do you have this in red",
        "shoes size chart",
        "what colours does it come in",
        "is the jacket waterproof",
        "price of the red jacket",
    ],
}


def toy_data() -> tuple[list[str], list[str]]:
    texts = [t for intent in TOY for t in TOY[intent]]
    labels = [intent for intent in TOY for _ in TOY[intent]]
    return texts, labels


@pytest.fixture(scope="session")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy set written once as files (read them, never write into the folder): ``train.csv`` (all 24 rows),
    ``validation.csv`` and ``test.jsonl`` (every second row, 12). ``toy_data()`` gives the same rows as lists."""
    from intentune import Examples, write_examples

    folder = tmp_path_factory.mktemp("toy")
    texts, labels = toy_data()
    write_examples(Examples(texts, labels), folder / "train.csv")
    write_examples(Examples(texts[::2], labels[::2]), folder / "validation.csv")
    write_examples(Examples(texts[::2], labels[::2]), folder / "test.jsonl")
    return folder


def _corpus() -> list[str]:
    corpus = [t for ts in TOY.values() for t in ts]
    corpus += (EXAMPLES / "shop_assistant.csv").read_text(encoding="utf-8").splitlines()
    return corpus


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer)
    # No pad token on purpose: loading must fall back to the end-of-text token, as for GPT-2.
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


TINY_SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "max_position_embeddings": 128}  # fmt: skip


def _save_tiny(folder: Path, model_class: type, config_class: type, tokenizer, **config: object) -> Path:
    """Save a seeded random model of the tiny sizes, and its tokenizer, as a Hugging Face folder."""
    torch.manual_seed(0)
    model_class(config_class(vocab_size=len(tokenizer), **TINY_SIZES, **config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a random Llama-style causal LM (hidden 32, 2 layers) and a byte-level BPE tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _bpe_tokenizer()
    return _save_tiny(
        tmp_path_factory.mktemp("tiny-decoder"), LlamaForCausalLM, LlamaConfig, tokenizer,
        num_key_value_heads=2, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a random BERT encoder (hidden 32, 2 layers) and a WordPiece tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = _wordpiece_tokenizer()
    return _save_tiny(
        tmp_path_factory.mktemp("tiny-encoder"), BertForMaskedLM, BertConfig, tokenizer,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def tiny_net(backbone_dir: Path) -> tuple[object, list[list[int]], list[int], int]:
    """An untrained ``IntentNet`` on a tiny backbone, with the toy set's token ids, label ids and the pad id."""
    from intentune.backbones import DECODER, load_backbone
    from intentune.net import IntentNet
    from intentune.preprocess import encode_labels, tokenize

    texts, labels = toy_data()
    classes = sorted(set(labels))
    torch.manual_seed(0)
    backbone, tokenizer, kind = load_backbone(str(backbone_dir))
    pooling = "last" if kind == DECODER else "mean"
    net = IntentNet(backbone, len(classes), kind=kind, pooling=pooling, dropout=0.0)
    return net, tokenize(tokenizer, texts, 32), encode_labels(labels, classes), int(tokenizer.pad_token_id)


# The [train] settings that let a tiny random backbone overfit the toy set quickly. Few-shot mode is off: with 6
# rows per intent, ``auto`` would turn it on and add its contrastive passes and a step-0 evaluation to every fit;
# tests of few-shot behaviour pass ``few_shot="on"`` (or ``"auto"``) themselves.
TINY_TRAIN = {"learning_rate": 3e-3, "head_learning_rate": 3e-2, "batch_size": 8, "epochs": 30, "warmup_ratio": 0.0,
              "early_stopping_patience": 0, "few_shot": "off", "device": DEVICE}  # fmt: skip


def tiny_config(backbone: Path, **train: object) -> Config:
    """A config with the tiny settings (:data:`TINY_TRAIN`, no dropout), ``train`` keys overriding them.

    The tiny decoder pools the plain text's last token: its random weights give the prompt wrap's shared last
    token nearly the same vector for every text, which the tests of everything but pooling need not fight
    (``test_pooling.py`` trains, saves and exports the default ``prompt`` pooling itself)."""
    config = Config()
    config.model.backbone = str(backbone)
    config.model.dropout = 0.0
    backbone_config = Path(backbone) / "config.json"
    if backbone_config.is_file() and json.loads(backbone_config.read_text(encoding="utf-8"))["model_type"] == "llama":
        config.model.pooling = "last"
    for key, value in {**TINY_TRAIN, **train}.items():
        setattr(config.train, key, value)
    return config


def tiny_sets(**train: object) -> list[str]:
    """The tiny settings as the command line's ``--set`` options (training on the CPU), ``train`` overriding them."""
    values = {**TINY_TRAIN, "device": "cpu", **train}
    return ["--set", "model.dropout=0.0", *(arg for k, v in values.items() for arg in ("--set", f"train.{k}={v}"))]


@pytest.fixture(scope="session")
def fitted_decoder(tiny_decoder: Path):
    """The tiny decoder fine-tuned on the toy set (shared by tests that only predict)."""
    from intentune import IntentClassifier

    texts, labels = toy_data()
    return IntentClassifier(tiny_config(tiny_decoder)).fit(texts, labels)


@pytest.fixture(scope="session")
def fitted_encoder(tiny_encoder: Path):
    from intentune import IntentClassifier

    texts, labels = toy_data()
    return IntentClassifier(tiny_config(tiny_encoder)).fit(texts, labels)


def find_chromium() -> str:
    """Debian's Chromium for the browser tests: fail (not skip) when it is missing, unless INTENTUNE_SKIP_BROWSER=1."""
    import shutil

    if os.environ.get("INTENTUNE_SKIP_BROWSER") == "1":
        pytest.skip("INTENTUNE_SKIP_BROWSER=1")
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail("chromium not found: run `make install` (it installs Debian's chromium package)", pytrace=False)
    return found
