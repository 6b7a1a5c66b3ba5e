"""Verified downloads against a local HTTP server on 127.0.0.1 (nothing else is reached).

The server serves official-layout random files: a good one, a truncated one (announces 10x what it sends), an
HTML page (what a proxy returns), a 404, and one that stalls after the headers (a timeout).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from uvis.errors import UserError, WeightsNotFoundError
from uvis.features import backbones, weights


@functools.cache
def _tiny_bytes(seed: int = 0, width: int = 48) -> bytes:
    """A tiny DINO ViT in the official layout (``width`` other than 48: a file of another architecture)."""
    torch.manual_seed(seed)
    buf = io.BytesIO()
    arch = dataclasses.replace(backbones.VITS["tiny"], embed_dim=width)
    torch.save(backbones.official_state_dict(backbones.build_vit(arch)), buf)
    return buf.getvalue()


class _Server:
    """Routes: /good/NAME, /truncated/NAME, /html/NAME, /missing/NAME (404), /stall/NAME; ``files`` by NAME."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                _, mode, name = self.path.split("/", 2)
                body = outer.files.get(name)
                if mode == "missing" or body is None:
                    self.send_error(404, "Not Found")
                    return
                if mode == "html":
                    page = b"<html>blocked</html>\r\n\r\n"[:24]
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                announced = len(body) * 10 if mode == "truncated" else len(body)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                if mode == "stall":
                    self.wfile.write(body[:100])
                    self.wfile.flush()
                    time.sleep(3)
                    return
                self.wfile.write(body if mode == "good" else body[: len(body) // 10 or 1])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server({"dino_tiny_test.pth": _tiny_bytes(), "other_arch.pth": _tiny_bytes(width=24)})
    yield s
    s.close()


def _cache() -> Path:
    return weights.hub_cache_dir()


def _cache_is_clean(name: str) -> bool:
    folder = _cache()
    return not (folder / name).exists() and not [p for p in folder.glob(".*") if p.is_file()] if folder.exists() \
        else True


def test_good_download_through_the_mirror_is_verified_and_cached(server, monkeypatch):
    monkeypatch.setenv(weights.MIRROR_ENV, f"{server.base}/good")
    model = backbones.create_backbone("tiny", True)
    target = _cache() / "dino_tiny_test.pth"
    assert target.is_file() and target.read_bytes() == server.files["dino_tiny_test.pth"]
    assert model.weights_path == target
    assert server.requests == ["/good/dino_tiny_test.pth"]
    assert not [p for p in _cache().iterdir() if p.name.startswith(".")]  # no temporary file left
    backbones.create_backbone("tiny", True)  # a second load takes the cached file
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode, reason", [
    ("truncated", r"truncated: \d+ of the \d+ bytes announced arrived"),
    ("html", "sent a web page, not the file"),
    ("missing", "HTTP 404 Not Found"),
    ("stall", r"no data from 127\.0\.0\.1 for 0\.5 s \(timeout"),
])
def test_a_bad_download_says_why_and_is_never_kept(server, monkeypatch, mode, reason):
    monkeypatch.setenv(weights.MIRROR_ENV, f"{server.base}/{mode}")
    monkeypatch.setenv(weights.TIMEOUT_ENV, "0.5")
    for _ in range(2):  # the second run fails the same way: nothing bad was kept in the cache
        with pytest.raises(WeightsNotFoundError, match=reason) as err:
            backbones.create_backbone("tiny", True)
        message = str(err.value)
        assert f"{server.base}/{mode}/dino_tiny_test.pth" in message and "\n" not in message
        assert "uvis weights download" in message and "dino_weights=PATH" in message and weights.MIRROR_ENV in message
        assert _cache_is_clean("dino_tiny_test.pth")


def test_refused_and_dns_failures_are_named(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsNotFoundError, match="connection to 127.0.0.1 refused"):
        backbones.create_backbone("tiny", True)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setenv(weights.MIRROR_ENV, "http://weights.example")
    with pytest.raises(WeightsNotFoundError, match="DNS lookup of weights.example failed"):
        backbones.create_backbone("tiny", True)
    assert _cache_is_clean("dino_tiny_test.pth")


def test_a_file_of_another_architecture_or_checksum_is_refused(server, monkeypatch):
    server.files["dino_tiny_test.pth"] = server.files["other_arch.pth"]  # loads, but is a narrower ViT
    monkeypatch.setenv(weights.MIRROR_ENV, f"{server.base}/good")
    with pytest.raises(WeightsNotFoundError, match="not the expected weights .*do not fit this backbone"):
        backbones.create_backbone("tiny", True)
    assert _cache_is_clean("dino_tiny_test.pth")

    good = _tiny_bytes()
    server.files["w.pth"] = good
    monkeypatch.delenv(weights.MIRROR_ENV)
    wrong = weights.WeightsSpec("w.pth", f"{server.base}/good/w.pth", sha256_prefix="0123abcd" * 8)
    with pytest.raises(WeightsNotFoundError, match=r"checksum mismatch \(sha256 [0-9a-f]{12}…, the publisher's is 0123abcd"):
        weights.resolve(wrong)
    assert _cache_is_clean("w.pth")
    digest = hashlib.sha256(good).hexdigest()
    # OpenAI's URLs carry the sha256 of the file in their path: it is checked
    url = f"{server.base}/good/w.pth".replace("/good/", f"/good/{digest}/")
    assert weights.sha256_in_url(url) == digest
    server.files[f"{digest}/w.pth"] = good
    right = weights.WeightsSpec("w.pth", url, sha256_prefix=weights.sha256_in_url(url))
    path = weights.resolve(right)
    assert path.read_bytes() == good and weights.file_sha256(path) == digest


def test_a_cached_file_that_no_longer_loads_says_delete_it_with_the_whole_reason(tmp_path):
    target = _cache() / "dino_tiny_test.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(_tiny_bytes()[:700])  # cut off
    with pytest.raises(UserError) as err:
        backbones.create_backbone("tiny", True)
    message = str(err.value)
    assert str(target) in message and "delete it" in message and "pass the weights path as dino_weights=PATH" in message
    assert "cannot read weights (" in message and "\n" not in message
    # the whole reason, not the first 120 characters of it
    reason = message.split("cannot read weights (", 1)[1].split(") — fix:", 1)[0]
    assert len(reason) > 40 and not reason.endswith("fr")


def test_check_needs_reports_every_missing_file_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv(weights.MIRROR_ENV)  # the publishers' URLs are named (download=False: nothing is fetched)
    needs = [backbones.backbone_need("dino_vitb8"), backbones.backbone_need("dino_resnet50"), backbones.backbone_need("tiny", tmp_path / "nope.pth")]
    with pytest.raises(WeightsNotFoundError) as err:
        weights.check_needs(needs, download=False)
    message = str(err.value)
    assert message.startswith("3 pretrained weights files are missing, nothing was started")
    for text in ("dino_vitbase8_pretrain.pth", "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/",
                 "dino_resnet50_pretrain.pth", "backbone_weights=PATH", str(tmp_path / "nope.pth"),
                 str(weights.hub_cache_dir()), "timm/vit_base_patch8_224.dino"):
        assert text in message, text
    assert "\n" not in message
    assert weights.check_needs([]) == []  # a stage with no pretrained weights (e.g. motion features)
