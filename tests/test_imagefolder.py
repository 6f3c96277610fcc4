"""Protects the data-folder checks: each layout mistake is a one-line DataError naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.imagefolder import DataError, FileList, scan_image_folder


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _assert_one_line(error: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_scans_the_tiny_folder(tiny_image_folder):
    root = tiny_image_folder(per_class=(3, 4))
    files = scan_image_folder(root)
    assert files.root == root
    assert files.class_names == ("1", "100")
    assert files.paths == tuple(f"1/1_{i:03d}.jpg" for i in range(3)) + tuple(
        f"100/100_{i:03d}.jpg" for i in range(4)
    )
    assert files.labels == (0,) * 3 + (1,) * 4


def test_accepts_a_string_path(tiny_image_folder):
    root = tiny_image_folder(per_class=3)
    assert scan_image_folder(str(root)) == scan_image_folder(root)


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        scan_image_folder(missing)
    _assert_one_line(e, str(missing), "--data")


def test_a_file_instead_of_a_folder(tmp_path):
    file = tmp_path / "photos.zip"
    _touch(file)
    with pytest.raises(DataError) as e:
        scan_image_folder(file)
    _assert_one_line(e, str(file), "folder")


def test_no_class_folders(tmp_path):
    _touch(tmp_path / "a.jpg")  # images directly in the root: the usual mistake
    with pytest.raises(DataError) as e:
        scan_image_folder(tmp_path)
    _assert_one_line(e, str(tmp_path), "sub-folder per class")


def test_single_class(tmp_path):
    _touch(tmp_path / "100" / "a.jpg")
    with pytest.raises(DataError) as e:
        scan_image_folder(tmp_path)
    _assert_one_line(e, str(tmp_path), "'100'", "two")


def test_empty_class(tmp_path):
    _touch(tmp_path / "1" / "a.jpg")
    (tmp_path / "100").mkdir()
    _touch(tmp_path / "100" / ".DS_Store")  # hidden files do not count as images
    with pytest.raises(DataError) as e:
        scan_image_folder(tmp_path)
    _assert_one_line(e, str(tmp_path / "100"), "empty")


def test_hidden_files_and_folders_are_ignored(tmp_path):
    _touch(tmp_path / "1" / "a.jpg")
    _touch(tmp_path / "1" / ".hidden.jpg")
    _touch(tmp_path / "100" / "b.jpg")
    _touch(tmp_path / ".cache" / "c.jpg")
    (tmp_path / "100" / "nested").mkdir()  # sub-folders inside a class are not images
    files = scan_image_folder(tmp_path)
    assert files.class_names == ("1", "100")
    assert files.paths == ("1/a.jpg", "100/b.jpg")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["100", "1"], ("1", "100")),
        (["20", "100", "5", "1"], ("1", "5", "20", "100")),  # numeric, not "1" < "100" < "20"
        (["cat", "10", "2", "ant"], ("2", "10", "ant", "cat")),  # numbers first, then names
        (["1", "01", "001"], ("001", "01", "1")),  # equal numbers: the name breaks the tie
        (["2", "\u00b2"], ("2", "\u00b2")),  # "²".isdigit() but it is no number
    ],
)
def test_class_order_is_sorted_numerically(tmp_path, names, expected):
    for name in names:
        _touch(tmp_path / name / "x.png")
    files = scan_image_folder(tmp_path)
    assert files.class_names == expected
    assert files.labels == tuple(range(len(expected)))
    assert files.paths == tuple(f"{name}/x.png" for name in expected)


def test_class_order_does_not_depend_on_listing_order(tmp_path, monkeypatch):
    for name in ("1", "01", "b", "a"):
        _touch(tmp_path / name / "x.png")
    expected = scan_image_folder(tmp_path).class_names
    real_iterdir = Path.iterdir

    def reversed_iterdir(self):
        return iter(sorted(real_iterdir(self), reverse=True))

    monkeypatch.setattr(Path, "iterdir", reversed_iterdir)
    assert scan_image_folder(tmp_path).class_names == expected == ("01", "1", "a", "b")


def test_files_are_sorted_within_a_class(tmp_path):
    for name in ("c.jpg", "a.jpg", "b.jpg"):
        _touch(tmp_path / "1" / name)
    _touch(tmp_path / "2" / "z.jpg")
    assert scan_image_folder(tmp_path).paths[:3] == ("1/a.jpg", "1/b.jpg", "1/c.jpg")


def test_by_class_and_only(tmp_path):
    files = FileList(tmp_path, ("1", "100"), ("1/a", "1/b", "100/c"), (0, 0, 1))
    assert files.by_class() == {0: ["1/a", "1/b"], 1: ["100/c"]}
    kept = files.only(["100/c", "1/a"])
    assert kept.paths == ("1/a", "100/c")  # the original order, not the argument's
    assert kept.labels == (0, 1)
    assert kept.class_names == files.class_names
    assert files.paths == ("1/a", "1/b", "100/c"), "only() must not change the original"
