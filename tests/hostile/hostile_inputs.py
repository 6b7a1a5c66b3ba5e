"""The hostile corpus: small broken, malicious and unusual inputs for every command, generated in code.

``build_corpus`` writes them under one folder and returns their paths. Every input is a few KB; building all of
them takes about a second.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from uvis.data.synthetic import make_dataset
from uvis.features import backbones
from uvis.train import TrainConfig, pseudo_labels_from_dataset


@dataclass
class Corpus:
    root: Path
    dataset: Path  # a valid synthetic dataset folder (annotations.json + JPEGImages/)
    gt: Path  # its annotations.json
    results: Path  # valid results for it (the ground truth as predictions)
    pseudo: Path  # valid pseudo-labels of it
    dino_weights: Path  # random weights of the tiny test DINO, in the official layout
    model_run: Path  # a run folder whose model_final.pt is cut to its first 20 KB
    davis: Path  # a valid two-frame DAVIS folder
    files: dict[str, Path]  # name -> one hostile input


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def faststart_mp4(path: Path, frames: int = 30, size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """An mp4 with its index at the front (as streamed files are): a cut copy still declares every frame."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=Fraction(30))
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def audio_only_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def davis_folder(root: Path, frames: int = 2, size: tuple[int, int] = (32, 48)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(frames):
        for sub, image in (("JPEGImages", Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))),
                           ("Annotations", Image.fromarray((np.arange(size[1])[None].repeat(size[0], 0) < 20)
                                                           .astype(np.uint8), "P"))):
            folder = root / sub / "480p" / "seq"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:05d}.{'jpg' if sub == 'JPEGImages' else 'png'}")
    return root


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _gt_variant(gt: dict, change) -> dict:  # noqa: ANN001 (a function editing the copy)
    data = copy.deepcopy(gt)
    change(data)
    return data


def _set_polygon(value: float):  # noqa: ANN202
    def change(data: dict) -> None:
        data["annotations"][0]["segmentations"][0] = [[1.0, 1.0, value, 2.0, 3.0, 9.0]]
    return change


def build_corpus(root: Path) -> Corpus:
    dataset_dir = root / "data"
    dataset = make_dataset(dataset_dir, num_videos=2, num_frames=3, height=32, width=48, num_objects=1, seed=0)
    gt_path = dataset_dir / "annotations.json"
    gt = json.loads(gt_path.read_text())
    results = _write_json(root / "results.json", [t.to_result_json() for t in dataset.tracks])
    pseudo = root / "pseudo.json"
    pseudo_labels_from_dataset(dataset).save(pseudo)

    torch.manual_seed(0)
    weights = root / "dino_tiny_test.pth"
    torch.save(backbones.official_state_dict(backbones.build_vit(backbones.VITS["tiny"])), weights)

    run = root / "run"
    run.mkdir()
    config = TrainConfig.preset_config("tiny", data=str(dataset_dir), pseudo=str(pseudo), out=str(run))
    (run / "config.json").write_text(json.dumps(config.to_json()))
    (run / "vocabulary.json").write_text(json.dumps([{"id": c.id, "name": c.name} for c in dataset.categories]))
    from uvis.model.model import build_model

    config.model.num_classes = len(dataset.categories)
    full = root / "model_full.pt"
    torch.save({"model": build_model(config.model, init="random").state_dict()}, full)
    (run / "model_final.pt").write_bytes(full.read_bytes()[:20_000])
    full.unlink()

    files: dict[str, Path] = {}
    h = root / "hostile"
    h.mkdir()
    files["gt_nan_polygon"] = _write_json(h / "gt_nan.json", _gt_variant(gt, _set_polygon(float("nan"))))
    files["gt_huge_polygon"] = _write_json(h / "gt_huge.json", _gt_variant(gt, _set_polygon(1e10)))
    files["gt_inf_polygon"] = _write_json(h / "gt_inf.json", _gt_variant(gt, _set_polygon(float("inf"))))
    files["gt_huge_size"] = _write_json(h / "gt_size.json", _gt_variant(
        gt, lambda d: d["videos"][0].update(width=10**10, height=10**10)))
    res = json.loads(results.read_text())
    res[0]["segmentations"][0] = [[1.0, 1.0, float("nan"), 2.0, 3.0, 9.0]]
    files["results_nan_polygon"] = _write_json(h / "res_nan.json", res)
    res = json.loads(results.read_text())
    res[0]["score"] = float("nan")
    files["results_nan_score"] = _write_json(h / "res_nan_score.json", res)
    deep = h / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    files["deep_json"] = deep
    deep_obj = h / "deep_obj.json"
    deep_obj.write_text('{"videos": ' + "[" * 100_000 + "]" * 100_000 + "}")
    files["deep_json_object"] = deep_obj

    # ground truth beside the real frames whose own videos are wrong: 0 frames, or a size the frames are not
    for name, change in (("gt_zero_frames", lambda d: d["videos"].append(
                              {"id": 99, "width": 48, "height": 32, "length": 0, "file_names": [], "name": "empty"})),
                         # (no annotations, as in a test split: those would be refused for their mask size)
                         ("gt_wrong_size", lambda d: (d["videos"][1].update(width=64, height=40),
                                                      d.pop("annotations")))):
        path = dataset_dir / f"{name}.json"  # beside JPEGImages/, so its frames are found
        _write_json(path, _gt_variant(gt, change))
        files[name] = path

    good_mp4 = faststart_mp4(h / "full.mp4")
    cut = h / "cut.mp4"
    cut.write_bytes(good_mp4.read_bytes()[: good_mp4.stat().st_size // 2])
    files["truncated_mp4"] = cut
    files["full_mp4"] = good_mp4
    files["audio_only"] = audio_only_mp4(h / "audio.mp4")
    garbage = h / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["garbage_mp4"] = garbage
    fifo = h / "fifo.mp4"
    os.mkfifo(fifo)
    files["fifo"] = fifo
    fifo_json = h / "fifo.json"
    os.mkfifo(fifo_json)
    files["fifo_json"] = fifo_json

    for name, text in (("toml_unknown_key", '[vocabulary]\nnmes = ["dog"]\n'),
                       ("toml_empty_names", "[vocabulary]\nnames = []\n"),
                       ("toml_string_vocabulary", 'vocabulary = "dog,cat"\n'),
                       ("toml_numbers", "[vocabulary]\nnames = [1, 2]\n"),
                       ("toml_repeated", '[vocabulary]\nnames = ["dog", "Dog"]\n'),
                       ("toml_unknown_top", 'nmae = "x"\n[vocabulary]\nnames = ["dog"]\n'),
                       ("toml_syntax", "[vocabulary\nnames = \n")):
        path = h / f"{name}.toml"
        path.write_text(text)
        files[name] = path

    bomb = h / "bomb_frames"
    bomb.mkdir()
    (bomb / "00000.png").write_bytes(png_header(40000, 8))
    files["bomb_frames"] = bomb

    a_file = h / "a_file"
    a_file.write_text("not a folder")
    files["a_file"] = a_file
    return Corpus(root=root, dataset=dataset_dir, gt=gt_path, results=results, pseudo=pseudo, dino_weights=weights,
                  model_run=run, davis=davis_folder(root / "davis"), files=files)
