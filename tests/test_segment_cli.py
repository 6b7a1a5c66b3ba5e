"""End to end: synthetic video -> oracle predictor -> `uvis segment` -> `uvis eval`.

The oracle gives ground-truth masks with noisy per-object embeddings, so everything after the
model (tracking, accumulation, scoring, result files) is what is tested. A correct pipeline
scores AP = 1.0 here; we require AP >= 0.95 (one swapped or split object in these videos costs
well over 0.05, while the threshold leaves room for harmless ranking ties with false positives).
"""

from __future__ import annotations

import json

import pytest

from oracle_predictor import OraclePredictor
from uvis.cli import segment as segment_cli
from uvis.cli.main import main
from uvis.data.synthetic import make_dataset
from uvis.data.vocabulary import Vocabulary
from uvis.data.ytvis import load_dataset, load_results
from uvis.evaluation import evaluate
from uvis.predict.base import Predictor


@pytest.fixture()
def synth(tmp_path):
    root = tmp_path / "synth"
    dataset = make_dataset(root, num_videos=3, num_frames=12, height=48, width=64, num_objects=3, seed=11)
    return root, dataset


def inject(monkeypatch, predictor):
    monkeypatch.setattr(segment_cli, "load_predictor", lambda *args: predictor)


def test_segment_then_eval_scores_high(synth, tmp_path, monkeypatch, capsys):
    root, dataset = synth
    oracle = OraclePredictor(dataset)
    inject(monkeypatch, oracle)
    out = tmp_path / "out"
    assert main(["segment", str(root), "--model", "oracle", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "segmented 3 video(s)" in printed and "tracks" in printed and "frames/s" in printed
    # says where each output went
    for name in ("results.json", "overlays", "masks", "summary.json"):
        assert f" {out / name}\n" in printed
    for v in dataset.videos:
        assert len(list((out / "masks" / v.name).glob("*.png"))) == 12
        assert (out / "overlays" / f"{v.name}.mp4").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == 3 and summary["frames"] == 36 and summary["tracks"] >= len(dataset.tracks)

    gt = load_dataset(root / "annotations.json")
    preds = load_results(out / "results.json", gt)
    assert {p.video_id for p in preds} == {v.id for v in gt.videos}
    stats = evaluate(gt, preds).stats
    assert stats["AP"] >= 0.95, stats
    # the same through the CLI
    assert main(["eval", str(root / "annotations.json"), str(out / "results.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP"] == pytest.approx(stats["AP"])


def test_resume_skips_finished_videos(synth, tmp_path, monkeypatch):
    root, dataset = synth
    out = tmp_path / "out"

    class Crashing(OraclePredictor):
        def predict(self, frames, next_frame=None):
            if self.calls >= 2:  # dies inside the second video (12 frames, batches of 8)
                raise RuntimeError("simulated crash")
            return super().predict(frames)

    inject(monkeypatch, Crashing(dataset))
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["segment", str(root), "--model", "x", "--out", str(out), "--no-progress", "--no-overlay"])
    assert [p.name for p in (out / "videos").glob("*.json")] == ["synth_0000.json"]
    assert not list((out / "videos").glob(".*tmp"))  # nothing half-written

    oracle = OraclePredictor(dataset)
    inject(monkeypatch, oracle)
    assert main(["segment", str(root), "--model", "x", "--out", str(out), "--no-progress", "--no-overlay"]) == 0
    assert oracle.calls == 4  # only videos 2 and 3 (2 batches each)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_finished"] == 1 and summary["segmented_now"] == 2 and summary["videos"] == 3
    assert not (out / "overlays").exists()
    preds = load_results(out / "results.json", load_dataset(root / "annotations.json"))
    assert {p.video_id for p in preds} == {1, 2, 3}
    # asking for overlays later makes them from the finished records, without running the model
    assert main(["segment", str(root), "--model", "x", "--out", str(out), "--no-progress"]) == 0
    assert oracle.calls == 4 and len(list((out / "overlays").glob("*.mp4"))) == 3
    from uvis.data.video import open_video

    assert open_video(out / "overlays" / "synth_0000.mp4").num_frames == 12


def test_options_reach_the_tracker(synth, tmp_path, monkeypatch):
    root, dataset = synth
    inject(monkeypatch, OraclePredictor(dataset))
    out = tmp_path / "out"
    args = ["segment", str(root / "annotations.json"), "--model", "x", "--out", str(out), "--no-progress",
            "--no-track-memory", "--no-png", "--no-overlay", "--top-k", "2", "--classes", "disc,square,triangle,ring,cross",
            "--continue-threshold", "0.3"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracker"]["memory"] == "last" and summary["tracker"]["reid_frames"] == 0
    assert summary["tracker"]["continue_threshold"] == 0.3
    assert all(v["tracks"] <= 2 for v in summary["per_video"])
    assert not (out / "masks").exists()


def test_user_errors_exit_2(synth, tmp_path, capsys):
    root, _ = synth
    out = str(tmp_path / "out")
    assert main(["segment", str(tmp_path / "missing.mp4"), "--model", "none", "--out", out]) == 2
    assert main(["segment", str(root), "--model", str(tmp_path / "no_run"), "--out", out]) == 2
    assert "model run folder not found" in capsys.readouterr().err
    assert main(["segment", str(root), "--model", "x", "--out", out, "--top-k", "0"]) == 2


def test_memory_bank_beats_minvis_baseline_end_to_end(tmp_path):
    """On longer synthetic videos objects are sometimes fully occluded or leave and come back: with the
    oracle, the memory bank keeps them (AP 1.0) while previous-frame matching splits them."""
    from uvis.data.sources import discover
    from uvis.track.segmenter import Segmenter
    from uvis.track.tracker import TrackerConfig

    dataset = make_dataset(tmp_path / "d", num_videos=4, num_frames=40, height=48, width=64, num_objects=4, seed=11)
    items = discover(tmp_path / "d").items
    ap = {}
    for name, cfg in {"ema": TrackerConfig(), "minvis": TrackerConfig.minvis_baseline()}.items():
        seg = Segmenter(OraclePredictor(dataset), tracker_config=cfg)
        preds = [t for it in items for t in seg.segment(it.open(), progress=False).to_ytvis(it.video_id)]
        ap[name] = evaluate(dataset, preds).stats["AP"]
    assert ap["ema"] >= 0.99 and ap["minvis"] < ap["ema"] - 0.03, ap


def test_segment_with_a_trained_tiny_model(tmp_path):
    """`--model RUN_DIR` goes through uvis.predict.trained.TrainedPredictor.from_run (2 training steps:
    the masks mean nothing, the plumbing is what is tested)."""
    from train_helpers import synthetic_pseudo, tiny_config
    from uvis.train import train

    dataset, pseudo = synthetic_pseudo(tmp_path, keep_categories=True, num_videos=1, num_frames=3)
    run = train(tiny_config(tmp_path, pseudo, "run", steps=2), progress=False)
    out = tmp_path / "out"
    common = ["--model", str(run), "--device", "cpu", "--no-progress", "--no-overlay", "--score-threshold", "0"]
    assert main(["segment", str(tmp_path / "data"), "--out", str(out), *common]) == 0
    preds = load_results(out / "results.json", dataset)
    assert preds and all(len(p.segmentations) == 3 for p in preds)
    out2 = tmp_path / "out2"
    assert main(["segment", str(tmp_path / "data"), "--out", str(out2), "--classes", "disc,ring", *common]) == 0
    assert json.loads((out2 / "summary.json").read_text())["vocabulary"] == ["disc", "ring"]
    assert main(["segment", str(tmp_path / "data"), "--out", str(out2), "--classes", "zebra", *common]) == 2


class _BlobPredictor(Predictor):
    """One fixed object in every frame (for inputs the oracle cannot recognise, e.g. lossy mp4)."""

    vocabulary = Vocabulary.from_names(["blob"])

    def predict(self, frames, next_frame=None):
        import torch

        from uvis.predict.types import FrameDetections

        b, h, w = frames.shape[:3]
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[0, h // 4: h // 2, w // 4: w // 2] = True
        return [FrameDetections(torch.ones(1, 8), torch.ones(1, 1), torch.full((1,), 0.9), mask.clone())
                for _ in range(b)]


def test_video_file_input(tmp_path, monkeypatch):
    from uvis.data.synthetic import write_video_file

    write_video_file(tmp_path / "clip.mp4", num_frames=9, height=48, width=64, fps=12.0)
    inject(monkeypatch, _BlobPredictor())
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "clip.mp4"), "--model", "x", "--out", str(out), "--no-progress",
                 "--batch-size", "4"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 1 and results[0]["video_id"] == 1 and len(results[0]["segmentations"]) == 9
    assert sorted(p.name for p in (out / "masks" / "clip").glob("*.png"))[:2] == ["00000.png", "00001.png"]
    from uvis.data.video import open_video

    overlay = open_video(out / "overlays" / "clip.mp4")
    assert overlay.num_frames == 9 and abs(overlay.fps - 12.0) < 0.01


@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:7"])
def test_unusable_device_is_one_line(synth, tmp_path, capsys, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    root, _ = synth
    assert main(["segment", str(root), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "o"),
                 "--device", device, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device" in err[0]
    assert segment_cli.resolve_device("cpu") == "cpu"


def test_rerun_with_other_settings_does_not_mix_results(synth, tmp_path, monkeypatch, capsys):
    """Finished videos are only reused for the same model, classes and tracker; output flags may change."""
    root, dataset = synth
    out = tmp_path / "out"

    class Crashing(OraclePredictor):
        def predict(self, frames, next_frame=None):
            if self.calls >= 2:  # dies inside the second video
                raise RuntimeError("simulated crash")
            return super().predict(frames)

    inject(monkeypatch, Crashing(dataset))
    base = ["segment", str(root), "--model", "x", "--out", str(out), "--no-progress", "--no-overlay", "--no-png"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(base)
    oracle = OraclePredictor(dataset)
    inject(monkeypatch, oracle)
    capsys.readouterr()
    assert main([*base, "--top-k", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "top_k" in err[0] and oracle.calls == 0
    assert main([*base, "--no-track-memory"]) == 2
    assert main(base[:-2]) == 0  # same settings, other output flags: resumes
    assert json.loads((out / "summary.json").read_text())["skipped_finished"] == 1


def test_skip_bad_videos_segments_the_rest(tmp_path, monkeypatch, capsys):
    from uvis.data.synthetic import write_video_file

    vids = tmp_path / "vids"
    for name in ("a", "b", "c"):
        write_video_file(vids / f"{name}.mp4", num_frames=4, height=48, width=64)
    (vids / "b.mp4").write_bytes((vids / "b.mp4").read_bytes()[:300])  # truncated
    inject(monkeypatch, _BlobPredictor())
    out = tmp_path / "out"
    args = ["segment", str(vids), "--model", "x", "--out", str(out), "--no-progress", "--no-overlay"]
    assert main(args) == 2  # default: stop on it, naming it; the finished video stays
    err = capsys.readouterr().err.strip()
    assert "b.mp4" in err and "\n" not in err and (out / "videos" / "a.json").exists()
    assert main([*args, "--skip-bad-videos"]) == 0
    assert "skipped 1 unreadable video(s): b" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == 2 and list(summary["unreadable"]) == ["b"]
    assert {r["video_id"] for r in json.loads((out / "results.json").read_text())} == {1, 3}


def test_help_states_the_tracker_defaults(capsys):
    from uvis.track.tracker import TrackerConfig

    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    defaults = TrackerConfig()
    assert f"(default {defaults.memory})" in text
    assert f"match it (default {defaults.similarity_threshold})" in text
    assert f"(default {defaults.score_threshold};" in text
    assert f"existing track (default {defaults.continue_threshold})" in text


def test_unreadable_single_video_leaves_no_output_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "fake.mp4").write_text("not a video")
    inject(monkeypatch, _BlobPredictor())
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "fake.mp4"), "--model", "x", "--out", str(out), "--no-progress"]) == 2
    assert "fake.mp4" in capsys.readouterr().err
    assert not out.exists()  # nothing half-made to clean up


def test_skip_bad_videos_when_none_can_be_read(tmp_path, monkeypatch, capsys):
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "a.mp4").write_text("not a video")
    (vids / "b.mp4").write_bytes(b"")
    inject(monkeypatch, _BlobPredictor())
    out = tmp_path / "out"
    code = main(["segment", str(vids), "--model", "x", "--out", str(out), "--no-progress", "--skip-bad-videos"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "none of the 2 videos could be read" in err and "\n" not in err
    assert not out.exists()
