"""Naming reads exactly the frames the pseudo-label file lists, not a new listing of the frame folders."""

import numpy as np
import pytest
from PIL import Image

from test_clip_naming import make_pseudo
from tiny_clip import load_tiny_clip, save_tiny_clip
from uvis.data.sources import discover
from uvis.data.vocabulary import Vocabulary
from uvis.errors import UserError
from uvis.pseudo.name_labels import name_and_embed
from uvis.pseudo.naming import NamingConfig
from uvis.pseudo.prototypes import PrototypeConfig

VOC = Vocabulary.from_names(["red thing", "green thing"])
CFG = NamingConfig(templates="single", background="keep")
OFF = PrototypeConfig(enabled=False)


def test_frame_added_to_folder_does_not_shift_frames(tmp_path):
    pseudo = make_pseudo(tmp_path / "data")
    clip = load_tiny_clip(save_tiny_clip(tmp_path))
    before = name_and_embed(pseudo, discover(tmp_path / "data"), clip, VOC, CFG, OFF).embeddings
    # a new frame that sorts first in the folder: a re-listing would read every frame one place off
    Image.fromarray(np.full((40, 48, 3), 255, np.uint8)).save(tmp_path / "data" / "alpha" / "00000.jpg")
    after = name_and_embed(pseudo, discover(tmp_path / "data"), clip, VOC, CFG, OFF).embeddings
    assert np.allclose(before, after, atol=1e-6)


def test_missing_listed_frame_is_a_one_line_user_error(tmp_path):
    pseudo = make_pseudo(tmp_path / "data")
    clip = load_tiny_clip(save_tiny_clip(tmp_path))
    (tmp_path / "data" / "alpha" / "00001.png").unlink()
    with pytest.raises(UserError, match="00001.png") as e:
        name_and_embed(pseudo, discover(tmp_path / "data"), clip, VOC, CFG, OFF)
    assert "\n" not in str(e.value)
