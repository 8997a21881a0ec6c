"""What a model folder handed to intentune can and cannot make it do: no code from the folder runs (not even
after a prompt under a terminal), no pickle is read, and a damaged folder is one clear line, exit 1.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentune import IntentClassifier
from intentune.backbones import from_pretrained, load_backbone
from intentune.cli import app
from intentune.errors import BackboneError, ModelError

# transformers imports such code from a copy in its modules cache, so the marker's path is absolute.
EVIL_CODE = """
from pathlib import Path
Path({marker!r}).write_text("the folder's code ran")
from transformers import PretrainedConfig
class EvilConfig(PretrainedConfig):
    model_type = "evilbert"
"""


def _make_evil(folder: Path) -> Path:
    """A folder whose config asks transformers to import ``evil.py`` from it (an unknown type plus auto_map)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "evilbert",
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"},
        "hidden_size": 32,
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "evil.py").write_text(EVIL_CODE.format(marker=str(folder / "RAN")), encoding="utf-8")
    return folder


def _under_terminal(code: str, answer: bytes = b"y\n", timeout: float = 120) -> tuple[int, str]:
    """Run ``python -c code`` with a pseudo-terminal as stdin/stdout/stderr, answering ``answer`` to any prompt.

    transformers asks "Do you wish to run the custom code? [y/N]" only when it sees a terminal, so this is the
    case a plain subprocess test cannot reach.
    """
    leader, follower = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    output, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if b"[y/N]" in output and not answered:
                    os.write(leader, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        code_ = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return code_, output.decode("utf-8", "replace")


def test_from_pretrained_pins_remote_code_off_and_safetensors() -> None:
    seen: dict[str, object] = {}

    class AutoModelProbe:
        @staticmethod
        def from_pretrained(source: object, **kwargs: object) -> None:
            seen.update(kwargs)

    from_pretrained(AutoModelProbe, "somewhere")
    assert seen == {"trust_remote_code": False, "use_safetensors": True}
    with pytest.raises(TypeError, match="sets trust_remote_code"):
        from_pretrained(AutoModelProbe, "somewhere", trust_remote_code=True)


def test_remote_code_backbone_is_refused(tmp_path: Path) -> None:
    evil = _make_evil(tmp_path / "evil")
    with pytest.raises(BackboneError, match="never runs code from a model folder"):
        load_backbone(str(evil))
    assert not (evil / "RAN").exists()


def test_remote_code_backbone_is_refused_under_a_terminal(tmp_path: Path) -> None:
    evil = _make_evil(tmp_path / "evil")
    code = (
        "import sys\nfrom intentune.backbones import load_backbone\nfrom intentune.errors import BackboneError\n"
        f"try:\n    load_backbone({str(evil)!r})\nexcept BackboneError as e:\n    print('REFUSED', e); sys.exit(7)\n"
    )
    status, output = _under_terminal(code)
    assert "Do you wish to run the custom code" not in output
    assert status == 7, output
    assert "REFUSED" in output and "never runs code" in output
    assert not (evil / "RAN").exists()


@pytest.mark.parametrize("meta_too", [False, True])
def test_remote_code_model_folder_runs_nothing_under_a_terminal(tmp_path: Path, fitted_encoder, meta_too: bool) -> None:
    """A real model folder edited to point at code of its own. The backbone's type comes from intentune.json, so
    an edited config.json alone changes nothing; when intentune.json names the unknown type too, the CLI refuses
    in one line. Either way nothing from the folder runs, and nobody is asked."""
    model = fitted_encoder.save(tmp_path / "model")
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="evilbert", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (model / "evil.py").write_text(EVIL_CODE.format(marker=str(model / "RAN")), encoding="utf-8")
    if meta_too:
        meta = json.loads((model / "intentune.json").read_text(encoding="utf-8"))
        meta["backbone_model_type"] = "evilbert"
        (model / "intentune.json").write_text(json.dumps(meta), encoding="utf-8")
    argv = ["intentune", "predict", str(model), "hello there"]
    status, output = _under_terminal(f"import sys\nfrom intentune.cli import app\nsys.argv = {argv!r}\napp()")
    assert "Do you wish to run the custom code" not in output
    assert not (model / "RAN").exists()
    if meta_too:
        assert status == 1, output
        assert "never runs code from a model folder" in output and "Traceback" not in output
    else:
        assert status == 0, output
        assert fitted_encoder.predict(["hello there"])[0] in output


def test_transformers_pipeline_refuses_the_folder_and_names_the_loader(tmp_path: Path, fitted_decoder) -> None:
    """transformers would otherwise load the backbone under a random classification layer, without a word."""
    from transformers import pipeline

    model = fitted_decoder.save(tmp_path / "model")
    with pytest.raises(ValueError, match=r"intentune\.IntentClassifier\.load"):
        pipeline("text-classification", model=str(model))
    texts = ["where is my order", "hello there"]
    assert IntentClassifier.load(model).predict(texts) == fitted_decoder.predict(texts)


def test_a_format_1_folder_still_loads(tmp_path: Path, fitted_encoder) -> None:
    """Folders written before the format-2 config.json (the backbone's own model_type there) load as before."""
    model = fitted_encoder.save(tmp_path / "model")
    meta = json.loads((model / "intentune.json").read_text(encoding="utf-8"))
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = meta.pop("backbone_model_type")
    meta["format_version"] = 1
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (model / "intentune.json").write_text(json.dumps(meta), encoding="utf-8")
    texts = ["where is my order", "hello there"]
    assert np.allclose(
        IntentClassifier.load(model).predict_proba(texts), fitted_encoder.predict_proba(texts), atol=1e-5
    )


@pytest.fixture
def saved_encoder(tmp_path: Path, fitted_encoder) -> Path:
    return fitted_encoder.save(tmp_path / "model")


def _predict(model: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["predict", str(model), "where is my order"])
    return result.exit_code, result.output


def test_truncated_weights_give_one_line(saved_encoder: Path) -> None:
    weights = saved_encoder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    status, output = _predict(saved_encoder)
    assert status == 1
    assert "incomplete or damaged" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_truncated_head_gives_one_line(saved_encoder: Path) -> None:
    head = saved_encoder / "head.safetensors"
    head.write_bytes(head.read_bytes()[:50])
    with pytest.raises(ModelError, match="incomplete or damaged"):
        IntentClassifier.load(saved_encoder)
    status, output = _predict(saved_encoder)
    assert status == 1 and len(output.strip().splitlines()) == 1


def test_pickled_weights_are_never_read(saved_encoder: Path) -> None:
    """A folder with ``pytorch_model.bin`` instead of safetensors is refused before anything is unpickled."""
    import pickle

    (saved_encoder / "model.safetensors").unlink()
    marker = saved_encoder / "UNPICKLED"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    # A pickle that would run code when loaded with full unpickling (weights_only=False).
    (saved_encoder / "pytorch_model.bin").write_bytes(
        pickle.dumps(type("P", (), {"__reduce__": lambda self: (eval, (payload,))})())
    )
    status, output = _predict(saved_encoder)
    assert status == 1, output
    assert "incomplete or damaged" in output and "Traceback" not in output
    assert not marker.exists()


def test_head_that_does_not_fit_the_labels_gives_one_line(saved_encoder: Path) -> None:
    meta_path = saved_encoder / "intentune.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["labels"] = [*meta["labels"], "one_more"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match="does not fit"):
        IntentClassifier.load(saved_encoder)


def test_an_unreachable_hub_id_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id that is neither cached nor reachable fails before any download is tried (no retries)."""
    import intentune.backbones as backbones

    monkeypatch.setattr(backbones, "_reachable", lambda endpoint, timeout: False)
    started = time.monotonic()
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache and .* cannot be reached"):
        load_backbone("someorg/not-cached-anywhere")
    assert time.monotonic() - started < 5
    assert backbones.hub_options(Path("a/folder")) == {}


def test_a_cached_hub_id_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    import intentune.backbones as backbones

    monkeypatch.setattr(backbones, "_reachable", lambda endpoint, timeout: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: "/cache/config.json")
    assert backbones.hub_options("someorg/cached") == {"local_files_only": True}


def test_a_backbone_with_only_pickled_weights_is_refused_with_the_way_out(tiny_encoder: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = shutil.copytree(tiny_encoder, tmp_path / "bin-only")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(BackboneError, match="safetensors files only, never a pickled pytorch_model.bin"):
        load_backbone(str(folder))
