import numpy as np
from PIL import Image

from uvis.report import ReportInputs, write_report


def test_report_has_numbers_tables_and_pictures(tmp_path):
    stats = {k: 0.5 for k in ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]}
    stats["APs"] = -1.0
    inputs = ReportInputs(
        title="Run",
        commands=["uvis run data --out run"],
        evaluations={"class-aware": stats},
        per_class_ap={"dog": 0.25, "cat": -1.0},
        masks_per_frame=[0, 1, 3, 3],
        prototype_counts={"dog": {"kept": 3, "removed": 1, "relabelled": 2}},
        overlay_frames=[np.zeros((8, 8, 3), np.uint8)],
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
