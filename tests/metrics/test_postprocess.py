"""Mask post-processing on hand-made arrays: largest component, hole filling, stacks and lists."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hamkit.errors import HamkitError
from hamkit.postprocess import fill_holes, keep_largest_component, postprocess_masks


def grid(text: str) -> np.ndarray:
    """A boolean mask from rows of '#' (lesion) and '.' (skin)."""
    return np.array([[c == "#" for c in row] for row in text.split()], dtype=bool)


def test_largest_component_keeps_the_biggest_blob():
    mask = grid("""
        ##....
        ##..#.
        #...#.
        ......
    """)
    expected = grid("""
        ##....
        ##....
        #.....
        ......
    """)
    assert np.array_equal(keep_largest_component(mask), expected)


def test_connectivity_decides_whether_diagonal_pixels_touch():
    mask = grid("""
        #....
        .#...
        .....
        ...##
    """)
    eight = keep_largest_component(mask)  # the diagonal pair (2 px) is one blob and ties with the pair below
    assert np.array_equal(eight, grid("#.... .#... ..... ....."))  # tie: first in raster order wins
    four = keep_largest_component(mask, connectivity=1)  # now three blobs of 1, 1 and 2 pixels
    assert np.array_equal(four, grid("..... ..... ..... ...##"))


def test_stack_is_processed_per_mask_without_mixing_masks():
    big = grid("#### #### .... ....")
    small_here = grid("##.. .... ...# ....")  # its own largest blob overlaps the other mask's blob
    empty = np.zeros((4, 4), bool)
    out = keep_largest_component(np.stack([big, small_here, empty]))
    assert out.shape == (3, 4, 4) and out.dtype == bool
    assert np.array_equal(out[0], big)
    assert np.array_equal(out[1], grid("##.. .... .... ...."))
    assert not out[2].any()


def test_stack_result_equals_a_per_mask_reference_on_random_masks():
    rng = np.random.default_rng(7)
    stack = rng.random((6, 20, 24)) > 0.55
    out = keep_largest_component(stack)
    for mask, got in zip(stack, out, strict=True):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        expected = labels == (int(np.argmax(sizes)) + 1) if count else np.zeros_like(mask)
        assert np.array_equal(got, expected)


def test_fill_holes_fills_enclosed_background_only():
    mask = grid("""
        .#####.
        .#...#.
        .#.#.#.
        .#####.
        .#...#.
        .#...##
    """)
    filled = fill_holes(mask)
    # the enclosed 2x3 region (with its island) is filled; the bottom pocket reaches the image
    # border, so it is not a hole and stays background
    assert filled[1:3, 1:6].all()
    assert not filled[4:6, 2:5].any()
    assert (filled | ~mask).all()  # nothing of the lesion is lost


def test_fill_holes_on_a_stack_leaves_other_masks_alone():
    ring = grid("### #.# ###")
    open_ring = grid("### #.. ###")
    out = fill_holes(np.stack([ring, open_ring]))
    assert out[0].all()
    assert np.array_equal(out[1], open_ring)


def test_postprocess_modes_on_a_list_of_different_sizes_keep_order():
    a = grid("""
        #####..
        #...#..
        #####.#
    """)
    b = grid("## #. .. .#")
    largest, both, filled = (postprocess_masks([a, b], mode) for mode in ("largest", "largest+fill", "fill"))
    assert [m.shape for m in both] == [(3, 7), (4, 2)]
    assert not largest[0][2, 6] and not largest[0][1, 1]  # speck dropped, hole kept
    assert both[0][1, 1] and not both[0][2, 6]  # speck dropped, hole filled
    assert filled[0][1, 1] and filled[0][2, 6]  # only holes filled
    assert np.array_equal(both[1], grid("## #. .. .."))
    unchanged = postprocess_masks([a.astype(np.uint8)], None)
    assert unchanged[0].dtype == bool and np.array_equal(unchanged[0], a)
    single = postprocess_masks(a, "largest")
    assert isinstance(single, np.ndarray) and np.array_equal(single, largest[0])


def test_bad_arguments_are_explained():
    with pytest.raises(HamkitError, match="unknown postprocess"):
        postprocess_masks(np.zeros((2, 2)), "biggest")
    with pytest.raises(HamkitError, match=r"\(H, W\) or \(N, H, W\)"):
        keep_largest_component(np.zeros((1, 2, 2, 2)))
    with pytest.raises(HamkitError, match="connectivity"):
        keep_largest_component(np.zeros((2, 2)), connectivity=3)
    with pytest.raises(HamkitError, match="mask 1"):
        postprocess_masks([np.zeros((2, 2)), np.zeros((2, 2, 2))], "fill")
