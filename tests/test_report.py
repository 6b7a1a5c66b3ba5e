import numpy as np
from PIL import Image

from uvis.pipeline import ROW_MEANINGS
from uvis.report import OverlayRow, RunReport, write_report


def test_report_has_numbers_tables_and_pictures(tmp_path):
    stats = {k: 0.5 for k in ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]}
    stats["APs"] = -1.0
    inputs = RunReport(
        title="Run",
        commands=["uvis run data --out run"],
        evaluations={"class-aware": stats},
        per_class_ap={"dog": 0.25, "cat": -1.0},
        masks_per_frame=[0, 1, 3, 3],
        prototype_counts={"dog": {"kept": 3, "removed": 1, "relabelled": 2}},
        overlay_rows=[OverlayRow("v", [np.zeros((8, 8, 3), np.uint8)], [0])],
    )
    md = write_report(tmp_path, inputs).read_text()
    assert "| class-aware | 50.0 | 50.0 | 50.0 | - |" in md
    assert "| dog | 25.0 |" in md and "| cat | - |" in md
    assert "4 frames, 7 masks, 1.75 masks per frame" in md
    assert "| dog | 3 | 1 | 2 |" in md
    for png in ["per_class_ap.png", "masks_per_frame.png", "contact_sheet.png"]:
        assert f"({png})" in md
        with Image.open(tmp_path / png) as im:
            assert im.size[0] > 0


def test_report_explains_rows_training_and_contact_sheet(tmp_path):
    stats = {k: 0.1 for k in ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]}
    frame = np.full((20, 40, 3), 7, np.uint8)
    inputs = RunReport(
        title="Run",
        evaluations={"uvis (class-agnostic)": stats, "no-track-memory (class-agnostic)": stats},
        row_meanings=ROW_MEANINGS,
        training=[{"step": 10, "loss": 9.0}, {"step": 20, "loss": 6.0}, {"step": 20, "loss": 4.5}, {"note": "x"}],
        overlay_rows=[OverlayRow("clip_a", [frame, frame, frame], [0, 5, 9], tracks=2),
                      OverlayRow("clip_b", [frame], [0])],
        notes=["the ground truth stood in for stage 1"],
    )
    md = write_report(tmp_path, inputs).read_text()
    # caveats come before the numbers they qualify
    assert md.index("## Read this first") < md.index("## YouTube-VIS metrics")
    assert "- *no-track-memory*: ablation: tracks matched to the previous frame only" in md
    assert "- *class-agnostic*:" in md and "- *class-aware*:" not in md
    assert "Trained to step 20; loss 9.000 at step 10, 4.500 at step 20." in md
    assert "(training_loss.png)" in md and (tmp_path / "training_loss.png").is_file()
    assert "| 1 | clip_a | 0, 5, 9 | 2 |" in md and "| 2 | clip_b | 0 | - |" in md
    with Image.open(tmp_path / "contact_sheet.png") as im:
        sheet = np.asarray(im)
    # two rows of three 400x200 cells, 4 px apart: the second video's missing frames are white, not the next video's
    assert sheet.shape[:2] == (2 * 200 + 4, 3 * 400 + 2 * 4)
    assert (sheet[-60, 500] == 255).all() and (sheet[-60, 100] == 7).all()
