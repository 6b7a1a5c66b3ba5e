"""`uvis eval` names the likely cause of the two commonest mismatches between a results file and its ground truth."""

import json

import numpy as np

from uvis.cli.main import main
from uvis.data.masks import encode
from uvis.data.ytvis import Category, Dataset, Track, Video, save_results


def _case(tmp_path, category_id: int, frames: int):
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    seg = encode(mask)
    gt = Dataset(videos=[Video(id=1, width=4, height=4, file_names=[f"v/{i}.jpg" for i in range(2)])],
                 categories=[Category(id=1, name="object")],
                 tracks=[Track(video_id=1, category_id=1, segmentations=[seg, seg], id=1)])
    gt_path, pred_path = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.save(gt_path)
    save_results(pred_path, [Track(video_id=1, category_id=category_id, segmentations=[seg] * frames, score=0.9)])
    return str(gt_path), str(pred_path)


def test_unknown_category_suggests_class_agnostic(tmp_path, capsys):
    gt, pred = _case(tmp_path, category_id=4, frames=2)
    assert main(["eval", gt, pred]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown category_id 4" in err[0] and "or pass --class-agnostic" in err[0]
    assert main(["eval", gt, pred, "--class-agnostic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP50"] > 0.99


def test_results_of_another_dataset_say_so(tmp_path, capsys):
    gt, pred = _case(tmp_path, category_id=1, frames=3)
    assert main(["eval", gt, pred]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 segmentations but video 1 has 2 frames" in err[0]
    assert "results must come from segmenting this ground truth's own videos" in err[0]
