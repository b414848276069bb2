"""tf.data pipelines on locally generated files, offline."""

import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import write_imagenet_val_tar
from tf_smoothtaylor import data


def write_image(path, rng, shape=(40, 60), fmt="png"):
    pixels = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    encoded = tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels)
    tf.io.write_file(path, encoded)
    return pixels


def test_decode_and_crop_resizes_shorter_side_then_centre_crops():
    # A 40×80 image, black at the far left and right: resize to 32×64, crop the white 32×32.
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 12:68] = 255
    pixels = data.decode_and_crop(tf.io.encode_png(image), size=32, resize=32).numpy()
    assert pixels.shape == (32, 32, 3) and pixels.min() > 0.95
    direct = data.decode_and_crop(tf.io.encode_png(image), size=16, resize=None).numpy()
    assert direct.shape == (16, 16, 3) and direct[:, 0].max() < 0.3


def test_from_files_sorted_with_ids(tmp_path):
    rng = np.random.default_rng(0)
    for name in ["b.png", "a.jpg", "c.PNG"]:
        write_image(str(tmp_path / name), rng, fmt="jpeg" if name.endswith("jpg") else "png")
    (tmp_path / "notes.txt").write_text("not an image")
    batches = list(data.from_files(str(tmp_path / "*"), size=24, resize=32, batch_size=2))
    ids = [i.decode() for _, _, names in batches for i in names.numpy()]
    assert [os.path.basename(i) for i in ids] == ["a.jpg", "b.png", "c.PNG"]
    pixels, labels, _ = batches[0]
    assert pixels.shape == (2, 24, 24, 3) and labels.numpy().tolist() == [-1, -1]
    assert 0.0 <= float(tf.reduce_min(pixels)) and float(tf.reduce_max(pixels)) <= 1.0


def test_image_folder_labels_and_stable_order(tmp_path):
    rng = np.random.default_rng(1)
    for label in ["cat", "dog"]:
        os.makedirs(tmp_path / "test" / label)
        for i in range(3):
            write_image(str(tmp_path / "test" / label / f"{i}.png"), rng)
    assert data.image_folder_labels(str(tmp_path)) == ["cat", "dog"]

    def read():
        return [(n.decode(), int(l)) for _, ls, ns in data.image_folder(str(tmp_path), size=16,
                                                                         resize=20, batch_size=4)
                for n, l in zip(ns.numpy(), ls.numpy())]

    first = read()
    assert first == read() and len(first) == 6
    for name, label in first:
        assert os.path.basename(os.path.dirname(name)) == ["cat", "dog"][label]


def test_imagenet_validation_from_a_local_tar(tmp_path):
    manual = tmp_path / "manual"
    write_imagenet_val_tar(str(manual), [3, 1, 5, 2, 4])
    dataset = data.imagenet_validation(str(manual), data_dir=str(tmp_path / "tfds"), limit=3,
                                       size=32, resize=36, batch_size=2)
    rows = [(n.decode(), int(l)) for _, ls, ns in dataset for n, l in zip(ns.numpy(), ls.numpy())]
    # The first three by file name, with ImageNet's real validation labels from tfds.
    assert rows == [("ILSVRC2012_val_00000001.JPEG", 65), ("ILSVRC2012_val_00000002.JPEG", 970),
                    ("ILSVRC2012_val_00000003.JPEG", 230)]
    everything = data.imagenet_validation(str(manual), data_dir=str(tmp_path / "tfds"),
                                          size=32, resize=36)
    assert sum(int(p.shape[0]) for p, _, _ in everything) == 5


@pytest.mark.parametrize("call,match", [
    (lambda d: data.from_files(str(d / "*.png")), "matching none"),
    (lambda d: data.image_folder(str(d)), "no images"),
    (lambda d: data.image_folder(str(d / "missing")), "directory"),
    (lambda d: data.imagenet_validation(str(d)), "ILSVRC2012_img_val.tar"),
    (lambda d: data.from_files([str(d / "x.png")], size=224, resize=100), "resize"),
])
def test_bad_input(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path)
