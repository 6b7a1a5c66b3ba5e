"""Smoke test on real frames: DAVIS-2016 ground truth as pseudo-labels, a few training steps, inference."""

from pathlib import Path

import numpy as np
import pytest

from uvis.data.davis import load_davis
from uvis.data.video import read_image
from uvis.predict.trained import TrainedPredictor
from uvis.train import TrainConfig, pseudo_labels_from_dataset, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DAVIS = SHARED / "data" / "davis2016"


def run_davis_smoke(davis: Path, tmp: Path) -> None:
    dataset = load_davis(davis, sequences=["car-shadow"])
    pseudo = pseudo_labels_from_dataset(dataset, keep_categories=False)
    pseudo.instances = [i for i in pseudo.instances if i.frame_index < 4]  # 4 annotated frames are enough
    pseudo.save(tmp / "pseudo.json")
    cfg = TrainConfig.preset_config("tiny", data=str(davis), pseudo=str(tmp / "pseudo.json"), out=str(tmp / "run"),
                                    steps=3, batch_size=2, image_size=(64, 112), device="cpu", copy_paste_prob=0.5)
    run = train(cfg, progress=False)
    predictor = TrainedPredictor.from_run(run, device="cpu")
    frame = read_image(dataset.frame_paths(dataset.videos[0])[0])
    det = predictor.predict(np.stack([frame, frame]))
    assert len(det) == 2 and det[0].masks.shape == (10, *frame.shape[:2])
    assert det[0].class_probs.shape == (10, 1)


@pytest.mark.skipif(not DAVIS.is_dir(), reason=f"real DAVIS-2016 subset not present at {DAVIS}")
def test_training_runs_on_real_davis_frames(tmp_path):
    run_davis_smoke(DAVIS, tmp_path)
