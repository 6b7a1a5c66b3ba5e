import numpy as np
import pytest
import torch

from uvis.errors import UserError
from uvis.pseudo.naming import NamingConfig, classify, crop_box, crop_masks, frame_tensor

MEAN = (0.48145466, 0.4578275, 0.40821073)
S = 32


def scene():
    """A 64x64 frame: a red 16x16 square at (24..40, 16..32) on a black/white checkerboard."""
    yy, xx = np.mgrid[:64, :64]
    frame = np.where(((yy // 2 + xx // 2) % 2 == 0)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    mask = np.zeros((64, 64), bool)
    mask[16:32, 24:40] = True
    frame[mask] = (255, 0, 0)
    return frame, mask


def crops(background, context=0.5):
    frame, mask = scene()
    cfg = NamingConfig(background=background, context=context, blur_sigma=2.0)
    images, inside = crop_masks(frame_tensor(frame, torch.device("cpu")), [mask], cfg, S, MEAN)
    return images[0], inside[0]


def test_crop_box_is_square_centred_with_context():
    _, mask = scene()
    assert crop_box(mask, 0.5) == (16, 8, 32)  # box 16x16 -> side 32, centred on (32, 24)
    assert crop_box(mask, 0.0) == (24, 16, 16)
    assert crop_box(np.zeros((10, 20), bool), 0.1) == (0, 0, 20)


def test_mask_lands_in_the_middle_of_the_crop():
    _, inside = crops("keep")
    assert inside[8:24, 8:24].all()  # side 32 == S: the 16x16 box maps to the centre at scale 1
    assert inside.sum() == 16 * 16


@pytest.mark.parametrize("background", ["blur", "grey", "keep"])
def test_object_pixels_are_untouched(background):
    images, inside = crops(background)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1)
    assert torch.allclose(images[:, inside], red.expand(3, int(inside.sum())), atol=1e-6)


def test_grey_background_is_clip_mean():
    images, inside = crops("grey")
    outside = images[:, ~inside]
    assert torch.allclose(outside, torch.tensor(MEAN).view(3, 1).expand_as(outside), atol=1e-6)


def test_keep_background_is_the_frame():
    frame, _ = scene()
    images, inside = crops("keep")
    expected = torch.from_numpy(frame[8:40, 16:48]).permute(2, 0, 1).float() / 255
    assert torch.allclose(images, expected, atol=1e-6)


def test_blur_background_smooths_the_checkerboard():
    keep, inside = crops("keep")
    blur, _ = crops("blur")
    far = ~inside
    far[6:26, 6:26] = False  # away from the object, where only checkerboard gets blurred
    assert keep[:, far].std() > 0.45  # sharp black/white
    assert blur[:, far].std() < 0.1  # blurred to nearly uniform grey
    assert blur[:, far].mean() == pytest.approx(0.5, abs=0.1)


def test_crop_outside_the_frame_is_padded_with_mean():
    frame = np.full((20, 20, 3), 255, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:10] = True  # touches the corner: the context square sticks out of the frame
    cfg = NamingConfig(background="keep", context=0.5)
    images, _ = crop_masks(frame_tensor(frame, torch.device("cpu")), [mask], cfg, 20, MEAN)
    assert crop_box(mask, 0.5) == (-5, -5, 20)
    assert torch.allclose(images[0, :, 0, 0], torch.tensor(MEAN))
    assert torch.allclose(images[0, :, 19, 19], torch.ones(3))


def test_bad_config_is_user_error():
    with pytest.raises(UserError, match="background"):
        NamingConfig(background="sepia")
    with pytest.raises(UserError):
        NamingConfig(context=-1)
    for context in (float("nan"), float("inf")):  # would crash later, in crop_box
        with pytest.raises(UserError, match="context"):
            NamingConfig(context=context)


def test_classify_is_softmax_of_scaled_cosine():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    probs = classify(emb, text, 10.0)
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert probs[0, 0] == pytest.approx(1 / (1 + np.exp(-10)))
