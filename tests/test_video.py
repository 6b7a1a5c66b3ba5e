"""Video I/O: mp4 round trips, frame folders, colour modes, and one-line errors for broken input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uvis.data.synthetic import render_video
from uvis.data.video import open_video, read_image, resize_short_side, to_rgb, write_video
from uvis.errors import UserError


def _assert_one_line(err: pytest.ExceptionInfo) -> None:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text and err.value.path


def test_mp4_round_trip(tmp_path):
    frames = render_video(num_frames=6, height=48, width=64, seed=0).frames
    path = write_video(tmp_path / "v.mp4", frames, fps=12)
    video = open_video(path)
    assert (len(video), video.height, video.width) == (6, 48, 64)
    assert video.fps == pytest.approx(12)
    assert video.name == "v"
    back = video.read_all()
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 12
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


@pytest.mark.parametrize(("h", "w"), [(33, 47), (31, 40), (1, 9)])
def test_mp4_odd_sizes_are_cropped_to_even(tmp_path, h, w):
    frames = render_video(num_frames=3, height=max(h, 8), width=max(w, 8), seed=1).frames[:, :h, :w]
    video = open_video(write_video(tmp_path / "odd.mp4", frames, fps=5))
    eh, ew = max(2, h - h % 2), max(2, w - w % 2)
    assert (len(video), video.height, video.width) == (3, eh, ew)
    back = video.read_all()
    assert back.shape == (3, eh, ew, 3)
    if h > 1:  # cropped, not resampled: pixels stay where they were
        err = np.abs(back.astype(int) - frames[:, :eh, :ew].astype(int)).mean()
        assert err < 15


def test_write_video_resizes_later_frames_and_rejects_nothing(tmp_path):
    a = np.full((20, 30, 3), 200, np.uint8)
    b = np.full((10, 16, 3), 50, np.uint8)
    video = open_video(write_video(tmp_path / "mixed.mp4", [a, b, to_rgb(b[:, :, 0])]))
    frames = video.read_all()
    assert frames.shape == (3, 20, 30, 3)
    assert abs(int(frames[1].mean()) - 50) < 8
    with pytest.raises(UserError, match="no frames"):
        write_video(tmp_path / "none.mp4", [])
    assert not (tmp_path / "none.mp4").exists()


def test_png_folder_is_exact_and_sorted(tmp_path):
    frames = render_video(num_frames=3, height=16, width=24, seed=2).frames
    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{t:05d}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.png").write_bytes(b"")
    video = open_video(tmp_path, fps=7)
    assert video.frame_names == ["00000.png", "00001.png", "00002.png"] and video.fps == 7
    assert np.array_equal(video.read_all(), frames)


def test_jpeg_folder(tmp_path):
    frames = render_video(num_frames=2, height=16, width=24, seed=3).frames
    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{t}.jpg", quality=95)
    back = open_video(tmp_path).read_all()
    assert back.shape == (2, 16, 24, 3) and np.abs(back.astype(int) - frames.astype(int)).mean() < 10


def test_greyscale_rgba_palette_and_16bit_frames_come_out_rgb(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    rgba = np.zeros((12, 10, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    pal = Image.fromarray(np.ones((12, 10), np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    deep = (grey.astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "deep.png")

    g = read_image(tmp_path / "grey.png")
    assert g.shape == (12, 10, 3) and np.array_equal(g[..., 1], grey) and np.array_equal(g[..., 2], grey)
    r = read_image(tmp_path / "rgba.png")
    assert r.shape == (12, 10, 3) and (r == [200, 0, 0]).all()
    assert (read_image(tmp_path / "pal.png") == [10, 20, 30]).all()
    d = read_image(tmp_path / "deep.png")
    assert d.shape == (12, 10, 3) and np.array_equal(d[..., 0], grey), "16-bit scaled, not clipped"


def test_to_rgb_and_resize_short_side():
    assert to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        to_rgb(np.zeros((4, 5, 2), np.uint8))
    f = np.zeros((100, 200, 3), np.uint8)
    assert resize_short_side(f, 50).shape == (50, 100, 3)
    assert resize_short_side(f, 50, max_long=80).shape == (40, 80, 3)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="empty") as err:
        open_video(tmp_path / "empty.mp4")
    _assert_one_line(err)


def test_not_a_video(tmp_path):
    (tmp_path / "text.mp4").write_text("hello, this is not a video\n" * 20)
    with pytest.raises(UserError, match="cannot open video") as err:
        open_video(tmp_path / "text.mp4")
    _assert_one_line(err)


def test_truncated_mp4(tmp_path):
    frames = render_video(num_frames=8, seed=4).frames
    data = write_video(tmp_path / "full.mp4", frames).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index ('moov') at the end is lost
    with pytest.raises(UserError) as err:
        list(open_video(tmp_path / "cut.mp4"))
    _assert_one_line(err)


def test_damaged_mp4_fails_while_decoding(tmp_path):
    frames = render_video(num_frames=8, seed=5).frames
    data = bytearray(write_video(tmp_path / "full.mp4", frames).read_bytes())
    start, end = data.find(b"mdat") + 8, data.find(b"moov") - 4
    assert 0 < start < end
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    video = open_video(tmp_path / "bad.mp4")  # the index is intact, so opening works
    with pytest.raises(UserError, match="cannot decode video") as err:
        list(video)
    _assert_one_line(err)


def test_mixed_frame_sizes(tmp_path):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "0.png")
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(tmp_path / "1.png")
    with pytest.raises(UserError, match="1.png is 14x10 but 0.png is 12x10") as err:
        open_video(tmp_path)
    _assert_one_line(err)


def test_empty_folder_missing_path_and_broken_frame(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no JPEG/PNG frames") as err:
        open_video(tmp_path / "empty")
    _assert_one_line(err)
    with pytest.raises(UserError, match="no such file"):
        open_video(tmp_path / "absent.mp4")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="cannot"):
        open_video(tmp_path / "broken")


def test_batches_stack_frames_and_keep_the_short_tail(tmp_path):
    for i in range(5):
        Image.fromarray(np.full((4, 6, 3), i * 10, np.uint8)).save(tmp_path / f"{i:05d}.png")
    shapes = [b.shape for b in open_video(tmp_path).batches(2)]
    assert shapes == [(2, 4, 6, 3), (2, 4, 6, 3), (1, 4, 6, 3)]
    assert [int(b[0, 0, 0, 0]) for b in open_video(tmp_path).batches(2)] == [0, 20, 40]


def _encode(path, frames, *, rotation: int = 0, fps: int = 10):
    """Write RGB frames with PyAV directly (``rotation``: the display matrix phones store, counter-clockwise)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for f in frames:
            for p in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(p)
        for p in stream.encode():
            container.mux(p)
    return path


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_comes_out_upright(tmp_path, rotation):
    """Phone videos are stored sideways with a rotation in the container: frames and sizes are the displayed ones."""
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32] = 255  # left half white as stored
    video = open_video(_encode(tmp_path / "r.mp4", [stored] * 2, rotation=rotation))
    upright = np.rot90(stored, rotation // 90)  # counter-clockwise quarter turns
    assert (video.height, video.width) == upright.shape[:2]
    frames = video.read_all()
    assert frames.shape == (2, *upright.shape) and frames.flags.c_contiguous
    assert np.abs(frames[0].astype(int) - upright.astype(int)).mean() < 10


def test_resolution_change_inside_a_video_file(tmp_path):
    """Streams may change size midway (concatenated MPEG files, WebRTC recordings): every frame comes out at the
    video's size, as ffmpeg's own conversion does, so frames stack into batches."""
    import av

    parts = []
    for (h, w), value in (((32, 48), 50), ((48, 64), 200)):
        path = tmp_path / f"{h}.mpg"
        with av.open(str(path), "w", format="mpeg") as container:
            stream = container.add_stream("mpeg1video", rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for _ in range(3):
                frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), value, np.uint8), format="rgb24")
                for p in stream.encode(frame):
                    container.mux(p)
            for p in stream.encode():
                container.mux(p)
        parts.append(path.read_bytes())
    (tmp_path / "both.mpg").write_bytes(b"".join(parts))
    video = open_video(tmp_path / "both.mpg")
    assert video.size == (32, 48)
    frames = np.concatenate(list(video.batches(4)))
    assert frames.shape[1:] == (32, 48, 3) and len(frames) >= 5
    assert abs(float(frames[0].mean()) - 50) < 10 and abs(float(frames[-1].mean()) - 200) < 10


def test_unpadded_frame_numbers_keep_their_order(tmp_path):
    """ffmpeg's `%d.jpg` numbers frames 1, 2, ..., 10 without zero padding: 10 comes after 9, not after 1."""
    for i in range(1, 12):
        Image.fromarray(np.full((4, 6, 3), i * 20, np.uint8)).save(tmp_path / f"frame{i}.png")
    video = open_video(tmp_path)
    assert video.frame_names == [f"frame{i}.png" for i in range(1, 12)]
    assert [int(f[0, 0, 0]) for f in video] == [i * 20 for i in range(1, 12)]


def test_cover_picture_stream_is_not_read_as_the_video():
    """A file listing its embedded thumbnail (attached_pic) before the real video stream reads the video."""
    from types import SimpleNamespace

    import av

    from uvis.data.video import main_video_stream

    cover = SimpleNamespace(name="cover", disposition=av.stream.Disposition.attached_pic)
    video = SimpleNamespace(name="video", disposition=av.stream.Disposition.default)
    assert main_video_stream([cover, video]).name == "video"
    assert main_video_stream([video, cover]).name == "video"
    assert main_video_stream([cover]).name == "cover"  # nothing else: read what there is


def test_prefetched_batches_equal_plain_batches_and_keep_errors(tmp_path):
    from uvis.data.synthetic import write_video_file
    from uvis.data.video import open_video

    write_video_file(tmp_path / "v.mp4", num_frames=7, height=32, width=48, seed=1)
    plain = list(open_video(tmp_path / "v.mp4").batches(3))
    ahead = list(open_video(tmp_path / "v.mp4").batches(3, prefetch=True))
    assert [b.shape[0] for b in ahead] == [3, 3, 1]
    assert all(np.array_equal(a, b) for a, b in zip(plain, ahead, strict=True))
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # decodes a while, then fails or ends early
    video = open_video(tmp_path / "v.mp4")
    video.path = tmp_path / "cut.mp4"
    try:
        got = sum(len(b) for b in video.batches(2, prefetch=True))
    except UserError as e:  # the decoder's error reaches the caller, not a worker thread
        assert "cut.mp4" in str(e)
    else:
        assert got < 7
