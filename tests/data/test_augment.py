from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from hamkit.data.augment import AUGMENTATIONS, FlipsAndTurns, apply_augmentation, build_augmentation
from hamkit.data.dataset import SkinDataset
from hamkit.errors import HamkitError

SIZE = 48


def _marked_item(random_state: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 image whose red channel is 255 exactly on an off-centre ellipse (the mask), with
    random green and blue, and that 0/1 mask."""
    generator = torch.Generator().manual_seed(random_state)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    lesion = ((xx - 16) / 9.0) ** 2 + ((yy - 30) / 7.0) ** 2 <= 1
    image = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8, generator=generator)
    image[0] = lesion.to(torch.uint8) * 255
    return image, lesion.to(torch.uint8).unsqueeze(0)


def _old_flips(image: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The dataset's augmentation before the named choices (the reference ``"flips"`` must match)."""
    flips = torch.randint(0, 2, (2,)).tolist()
    turns = int(torch.randint(0, 4, (1,)))
    dims = [d for d, flip in zip((2, 1), flips, strict=True) if flip]
    tensors = [image] if mask is None else [image, mask]
    if dims:
        tensors = [t.flip(dims) for t in tensors]
    if turns:
        tensors = [t.rot90(turns, (1, 2)) for t in tensors]
    return tensors[0], (tensors[1] if mask is not None else None)


@pytest.mark.parametrize("choice", AUGMENTATIONS)
def test_each_choice_keeps_shapes_dtypes_and_binary_masks(choice):
    transform = build_augmentation(choice, image_size=SIZE)
    image, mask = _marked_item()
    torch.manual_seed(0)
    for _ in range(5):
        out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert out_image.shape == (3, SIZE, SIZE) and out_image.dtype == torch.uint8
        assert out_mask.shape == (1, SIZE, SIZE) and set(out_mask.unique().tolist()) <= {0, 1}
        as_float, float_mask = apply_augmentation(transform, image, mask)
        assert as_float.dtype == torch.float32 and 0.0 <= as_float.min() and as_float.max() <= 1.0
        assert float_mask is not None and float_mask.dtype == torch.float32
        assert set(float_mask.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("choice", ["flips", "light", "strong"])
def test_mask_moves_with_the_image(choice):
    transform = build_augmentation(choice, image_size=SIZE)
    image, mask = _marked_item()
    torch.manual_seed(1)
    moved = 0
    for _ in range(8):
        out_image, out_mask = apply_augmentation(transform, image, mask)
        assert out_mask is not None
        red = out_image[0] > 0.4  # the marked ellipse, wherever the transform put it
        overlap = (red & (out_mask[0] > 0)).sum() / (red | (out_mask[0] > 0)).sum()
        if choice == "flips":
            assert torch.equal(red, out_mask[0] > 0)  # exact pixel moves
        else:
            assert overlap > 0.85, overlap
        moved += int(not torch.equal(out_mask, mask.float()))
    assert moved >= 4  # the transform did move things (each draw is identity with probability <= 1/8)


def test_flips_is_the_previous_behaviour_bit_for_bit(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, augment="flips")
    plain = ds.with_options(augment=False)
    for index in range(4):
        torch.manual_seed(index)
        new = ds[index]
        torch.manual_seed(index)
        reference = plain[index]
        old_image, old_mask = _old_flips(reference["image"], reference["mask"])
        assert torch.equal(new["image"], old_image) and torch.equal(new["mask"], old_mask)


def test_true_is_flips_and_false_none_is_identity(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, augment=False)
    assert isinstance(build_augmentation(True, image_size=32), FlipsAndTurns)
    image, mask = _marked_item()
    out = build_augmentation("none", image_size=SIZE)(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert torch.equal(out[0], image) and torch.equal(out[1], mask)
    for off in ("none", False, None):
        item = ds.with_options(augment=off)[2]
        assert torch.equal(item["image"], ds[2]["image"]) and torch.equal(item["mask"], ds[2]["mask"])
    torch.manual_seed(5)
    by_true = ds.with_options(augment=True)[1]
    torch.manual_seed(5)
    by_name = ds.with_options(augment="flips")[1]
    assert torch.equal(by_true["image"], by_name["image"])


@pytest.mark.parametrize("choice", AUGMENTATIONS)
def test_seeded_determinism(choice, tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, augment=choice)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append([ds[i] for i in range(3)])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    if choice != "none":
        torch.manual_seed(8)
        other = [ds[i]["image"] for i in range(3)]
        assert not all(torch.equal(x, y["image"]) for x, y in zip(other, runs[0], strict=True))


def test_a_users_v2_transform_moves_image_and_mask(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32)
    flipped = ds.with_options(augment=v2.RandomHorizontalFlip(p=1.0))
    assert "augment='custom'" in repr(flipped)
    assert torch.allclose(flipped[0]["image"], ds[0]["image"].flip(2), atol=1e-6)
    assert torch.equal(flipped[0]["mask"], ds[0]["mask"].flip(2))
    # without masks the transform gets the image alone; a float 0..1 result is accepted
    no_masks = SkinDataset.from_folder(tiny_folder, image_size=32, augment=v2.ToDtype(torch.float32, scale=True))
    assert torch.allclose(no_masks[0]["image"], ds[0]["image"], atol=1e-6) and "mask" not in no_masks[0]


def test_bad_choices_and_transforms_are_reported(tiny_folder):
    with pytest.raises(HamkitError, match=r"unknown augment 'heavy'; choose one of none, flips, light, strong"):
        build_augmentation("heavy", image_size=32)
    with pytest.raises(HamkitError, match="unknown augment 'Flips'"):
        SkinDataset.from_folder(tiny_folder, image_size=32, augment="Flips")
    with pytest.raises(HamkitError, match="augment must be one of .* got a int"):
        build_augmentation(3, image_size=32)  # type: ignore[arg-type]
    shrink = SkinDataset.from_folder(tiny_folder, image_size=32, augment=v2.Resize(16))
    with pytest.raises(HamkitError, match=r"must return a \(3, 32, 32\) image, got \(3, 16, 16\)"):
        shrink[0]
