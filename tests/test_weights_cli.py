"""``uvis weights list | check | download``, offline (a local HTTP server on 127.0.0.1 stands in for the mirror)."""

from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from uvis.cli.main import main
from uvis.features import backbones, weights


def _tiny_dino(path, seed=0):
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), path)
    return path


@pytest.fixture()
def mirror(tmp_path, monkeypatch):
    """A plain HTTP server on 127.0.0.1 serving a folder, as a mirror would."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
    yield folder
    httpd.shutdown()
    httpd.server_close()


def test_list_says_what_each_command_needs_and_where_it_was_found(tmp_path, monkeypatch, capsys):
    wdir = tmp_path / "w"
    path = _tiny_dino(wdir / "dino_tiny_test.pth")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(wdir))
    assert main(["weights", "list", "--dino", "tiny"]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"found {path} (" in out and f"sha256 {digest}" in out and " KB, " in out
    assert "dino_tiny_test.pth (test-only tiny DINO): needed by run, pseudo-label, pseudo-label --name, " \
           "segment --model none" in out
    assert "ViT-B-32.pt (CLIP ViT-B-32/openai): needed by run, pseudo-label --name, name, segment --model none" in out
    assert "missing: looked in" in out and "http://127.0.0.1:9/ViT-B-32.pt" in out
    assert "dino_resnet50_pretrain.pth (DINO ResNet-50): needed by run, train" in out


def test_check_loads_each_file_and_exits_2_on_a_problem(tmp_path, monkeypatch, capsys):
    wdir = tmp_path / "w"
    path = _tiny_dino(wdir / "dino_tiny_test.pth")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(wdir))
    assert main(["weights", "check", "--dino", "tiny", "pseudo-label"]) == 2  # --name also needs CLIP
    captured = capsys.readouterr()
    assert "ok       dino_tiny_test.pth" in captured.out and "problem  ViT-B-32.pt" in captured.out
    assert "1 of 2 weights files needed by pseudo-label --name cannot be used" in captured.err
    path.write_bytes(path.read_bytes()[:500])  # damaged
    assert main(["weights", "check", "--dino", "tiny", "pseudo-label"]) == 2
    assert "delete it, or pass the path of" in capsys.readouterr().out
    _tiny_dino(path)
    (tmp_path / "rn.pth").write_bytes(path.read_bytes())  # a ViT file given as the ResNet-50
    assert main(["weights", "check", "train", "--backbone-weights", str(tmp_path / "rn.pth")]) == 2
    assert "do not fit this backbone" in capsys.readouterr().out
    assert main(["weights", "check", "nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_download_fetches_ahead_of_time_and_check_passes_after(tmp_path, mirror, capsys):
    source = _tiny_dino(mirror / "dino_tiny_test.pth", seed=4)
    assert main(["weights", "download", "tiny"]) == 0
    out = capsys.readouterr().out
    cached = weights.hub_cache_dir() / "dino_tiny_test.pth"
    assert cached.read_bytes() == source.read_bytes() and str(cached) in out
    assert main(["weights", "check", "--dino", "tiny"]) == 2  # CLIP and the ResNet-50 are still missing
    capsys.readouterr()
    assert main(["weights", "download", "tiny", "dino_resnet50"]) == 2  # not on the mirror: HTTP 404
    err = capsys.readouterr().err
    assert "dino_resnet50_pretrain.pth failed: HTTP 404" in err and len(err.strip().splitlines()) == 1
    assert main(["weights", "download", "no-such-model"]) == 2
    assert "unknown weights name 'no-such-model'" in capsys.readouterr().err
