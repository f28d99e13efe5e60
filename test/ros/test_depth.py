"""The node's registered depth input (issue 19): 16UC1/32FC1 decoding (gcf_ros.ros.image_codec),
matching and checking against the colour frame (gcf_ros.ros.depth_sync), and one refiner over
Fast DDS fed frames with registered, missing, wrongly sized, unregistered and late depth."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from gcf_ros.ros import image_codec
from gcf_ros.ros.depth_sync import DepthBook
from gcf_ros.ros.params import NodeParams

DEPTH = np.array([[0.5, 0.0, 1.234], [np.nan, 65.535, 2.0]], dtype=np.float32)  # 0 / NaN: missing


def _msg(fields: dict, stamp: float = 0.0, frame_id: str = "cam") -> SimpleNamespace:
    header = SimpleNamespace(stamp=stamp, frame_id=frame_id)
    return SimpleNamespace(header=header, **fields)


def _padded(fields: dict, pad: int) -> dict:
    """The same image with ``pad`` bytes of padding at the end of every row."""
    h, step = fields["height"], fields["step"]
    rows = np.zeros((h, step + pad), np.uint8)
    rows[:, :step] = np.frombuffer(fields["data"], np.uint8).reshape(h, step)
    return {**fields, "step": step + pad, "data": rows.tobytes()}


# ------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 3])
def test_depth_decodes_to_metres_with_padding_and_either_byte_order(encoding, bigendian, pad):
    fields = image_codec.depth_to_image_fields(DEPTH, encoding, 0.001, bigendian)
    assert fields["is_bigendian"] == int(bigendian) and fields["encoding"] == encoding
    msg = _msg(_padded(fields, pad))
    depth = image_codec.depth_to_metres(msg, unit_scale=0.001)
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    expected = np.nan_to_num(DEPTH, nan=0.0)
    np.testing.assert_allclose(depth, expected, atol=1e-6 if encoding == "32FC1" else 5e-4)


def test_16uc1_counts_follow_the_unit_scale_and_the_byte_order_flag_is_read():
    counts = np.array([[1000, 0], [258, 65535]], dtype="<u2")
    fields = {"height": 2, "width": 2, "encoding": "16UC1", "step": 4, "is_bigendian": 0,
              "data": counts.tobytes()}  # fmt: skip
    np.testing.assert_allclose(
        image_codec.depth_to_metres(_msg(fields), unit_scale=0.0001),
        [[0.1, 0.0], [0.0258, 6.5535]],
        rtol=1e-6,
    )
    # the same bytes read big-endian: 1000 = 0x03e8 -> 0xe803 = 59395
    big = image_codec.depth_to_metres(_msg({**fields, "is_bigendian": 1}), unit_scale=0.001)
    assert big[0, 0] == pytest.approx(59.395) and big[1, 0] == pytest.approx(0.513)


def test_nan_inf_and_negative_depth_are_missing():
    values = np.array([[np.nan, np.inf, -np.inf], [-0.5, 0.0, 0.75]], dtype="<f4")
    fields = {"height": 2, "width": 3, "encoding": "32FC1", "step": 12, "is_bigendian": 0,
              "data": values.tobytes()}  # fmt: skip
    depth = image_codec.depth_to_metres(_msg(fields))
    np.testing.assert_array_equal(depth, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.75]])


def test_depth_decoding_errors_name_the_problem():
    fields = image_codec.depth_to_image_fields(DEPTH, "16UC1")
    with pytest.raises(image_codec.ImageDecodeError, match=r"'mono8'.*16UC1, 32FC1"):
        image_codec.depth_to_metres(_msg({**fields, "encoding": "mono8"}))
    with pytest.raises(image_codec.ImageDecodeError, match="step 4 < width 3 x 2 bytes"):
        image_codec.depth_to_metres(_msg({**fields, "step": 4}))
    with pytest.raises(image_codec.ImageDecodeError, match="10 bytes of data"):
        image_codec.depth_to_metres(_msg({**fields, "data": fields["data"][:10]}))
    with pytest.raises(image_codec.ImageDecodeError, match="empty"):
        image_codec.depth_to_metres(_msg({**fields, "width": 0}))


# ----------------------------------------------------------------------- matching by stamp
def _depth(stamp: float, size=(3, 2), frame_id="cam", encoding="16UC1") -> SimpleNamespace:
    depth = np.full(size[::-1], 0.8, np.float32)
    return _msg(image_codec.depth_to_image_fields(depth, encoding), stamp, frame_id)


def test_depth_is_matched_by_stamp_and_checked_against_the_frame():
    book = DepthBook(slop=0.01, unit_scale=0.001, size=4)
    got = book.lookup(1.0, 3, 2, "cam")  # none at all: missing, after at most the slop
    assert got.depth_m is None and got.kind == "depth_missing"
    assert (
        got.note == "depth missing: none within sync_slop (0.01 s) of the frame; refined RGB-only"
    )
    book.add(1.0, _depth(1.0))
    book.add(1.1, _depth(1.1, encoding="32FC1"))
    for stamp in (1.0, 1.005, 1.1):
        got = book.lookup(stamp, 3, 2, "cam")
        assert got.kind == got.note == "" and got.depth_m is not None
        np.testing.assert_allclose(got.depth_m, 0.8, atol=1e-6)
    got = book.lookup(1.05, 3, 2, "cam")  # outside the slop of both (a late or early depth)
    assert got.kind == "depth_missing" and "the nearest 0.050 s away" in got.note
    got = book.lookup(1.1, 6, 4, "cam")
    assert got.kind == "depth_size_mismatch"
    assert got.note == "depth refused: 3x2, image 6x4; refined RGB-only"
    got = book.lookup(1.1, 3, 2, "camera_depth_optical_frame")
    assert got.kind == "depth_frame_mismatch" and "registered" in got.note
    rgb8 = _depth(1.2)
    rgb8.encoding = "rgb8"
    book.add(1.2, rgb8)
    got = book.lookup(1.2, 3, 2, "cam")
    assert got.kind == "bad_depth" and "'rgb8'" in got.note and got.note.endswith("RGB-only")
    for k in range(5):  # the newest `size` kept
        book.add(2.0 + k, _depth(2.0 + k))
    assert len(book) == 4 and book.lookup(1.1, 3, 2, "cam").kind == "depth_missing"
    book.clear()
    assert len(book) == 0


def test_the_depth_book_is_bounded_in_bytes():
    book = DepthBook(0.01, 0.001, size=30, max_bytes=30)  # 12 bytes per 3 x 2 16UC1 image
    for k in range(5):
        book.add(float(k), _depth(float(k)))
    assert len(book) == 2
    book.add(9.0, _depth(9.0, size=(10, 10)))  # larger than the bound alone: the newest stays
    assert len(book) == 1 and book.lookup(9.0, 10, 10, "cam").depth_m is not None


def test_a_frame_waits_for_its_depth_at_most_the_slop():
    book = DepthBook(slop=0.5, unit_scale=0.001)
    book.add(0.9, _depth(0.9))
    late = threading.Timer(0.1, book.add, (1.0, _depth(1.0)))  # in flight: comes 0.1 s later
    late.start()
    t0 = time.monotonic()
    got = book.lookup(1.0, 3, 2, "cam")
    late.join()
    assert got.depth_m is not None and 0.05 < time.monotonic() - t0 < 0.45
    t0 = time.monotonic()  # none comes: missing after the slop, not later
    assert book.lookup(1.6, 3, 2, "cam").kind == "depth_missing"
    assert 0.45 < time.monotonic() - t0 < 1.0
    book.add(2.6, _depth(2.6))  # a newer depth came: the frame's own was lost, no wait
    t0 = time.monotonic()
    assert book.lookup(2.0, 3, 2, "cam").kind == "depth_missing"
    assert time.monotonic() - t0 < 0.1


def test_depth_parameters():
    p = NodeParams()
    assert p.use_depth is False and p.depth_unit_scale == 0.001
    assert NodeParams(use_depth=True, depth_unit_scale=0.0001).depth_unit_scale == 0.0001
    for bad in (0.0, -0.001, 2.0):
        with pytest.raises(ValueError, match="depth_unit_scale must be in"):
            NodeParams(depth_unit_scale=bad)
    with pytest.raises(ValueError, match="use_depth must be true or false"):
        NodeParams(use_depth=1)


NAMESPACE = f"depth_{os.getpid()}"  # no other test's refiner answers these inputs
