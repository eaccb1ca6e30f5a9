"""expand_sources: folders, globs and @list files become image paths, in order, bad items kept."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assistant.vision.errors import ImageError, ImageNotFoundError
from assistant.vision.io import expand_sources, load_image


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (10, 20, 30)).save(path, format="PNG")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    touch(
        root,
        "b.jpg",
        "A.PNG",
        "sub/c.gif",
        "sub/deeper/d.webp",
        "sub/z.TIFF",
        "sub-x/e.bmp",
        ".hidden/f.jpg",
        ".g.jpg",
        "sub/.cache/h.png",
    )
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "data.csv").write_text("a,b")
    return root


def rel(paths: list[object], root: Path) -> list[str]:
    return [Path(str(p)).relative_to(root).as_posix() for p in paths]


def test_folder_expands_recursively_sorted_without_hidden(tree: Path) -> None:
    found = expand_sources([tree])
    assert all(isinstance(p, str) for p in found)
    # Sorted by path components, so "sub/..." comes before "sub-x/...".
    expected = ["A.PNG", "b.jpg", "sub/c.gif", "sub/deeper/d.webp", "sub/z.TIFF", "sub-x/e.bmp"]
    assert rel(found, tree) == expected
    assert expand_sources([str(tree)]) == found
    assert expand_sources([str(tree) + os.sep]) == found


def test_folder_without_recursion(tree: Path) -> None:
    assert rel(expand_sources([tree], recursive=False), tree) == ["A.PNG", "b.jpg"]


def test_custom_extensions_are_case_insensitive(tree: Path) -> None:
    assert rel(expand_sources([tree], extensions=["png", ".TIFF"]), tree) == ["A.PNG", "sub/z.TIFF"]


def test_hidden_root_folder_given_explicitly_is_expanded(tree: Path) -> None:
    assert rel(expand_sources([tree / ".hidden"]), tree / ".hidden") == ["f.jpg"]


def test_globs_expand_sorted_and_filtered(tree: Path) -> None:
    assert rel(expand_sources([str(tree / "*")]), tree) == [
        "A.PNG",
        "b.jpg",
        "sub/c.gif",
        "sub/deeper/d.webp",
        "sub/z.TIFF",
        "sub-x/e.bmp",
    ]
    assert rel(expand_sources([str(tree / "**" / "*.gif")]), tree) == ["sub/c.gif"]
    assert rel(expand_sources([str(tree / "?.jpg")]), tree) == ["b.jpg"]
    assert rel(expand_sources([str(tree / "sub" / "[cz].*")]), tree) == ["sub/c.gif", "sub/z.TIFF"]


def test_overlapping_globs_do_not_repeat_files(tree: Path) -> None:
    found = expand_sources([str(tree / "*.jpg"), str(tree / "b*"), str(tree / "*.PNG")])
    assert rel(found, tree) == ["b.jpg", "A.PNG"]


def test_explicit_repeats_are_kept(tree: Path) -> None:
    one = str(tree / "b.jpg")
    assert expand_sources([one, one]) == [one, one]


def test_glob_matching_nothing_passes_through(tree: Path) -> None:
    pattern = str(tree / "*.heic")
    assert expand_sources([pattern]) == [pattern]


def test_existing_file_passes_through_as_given(tree: Path) -> None:
    as_path = tree / "notes.txt"  # named explicitly, so kept whatever its extension
    assert expand_sources([as_path])[0] is as_path
    weird = tree / "odd[1].jpg"  # glob characters, but a real file: taken literally
    touch(tree, "odd[1].jpg")
    assert expand_sources([str(weird)]) == [str(weird)]


def test_non_path_items_pass_through_unchanged(tree: Path) -> None:
    image = Image.new("RGB", (2, 2))
    array = np.zeros((2, 2), np.uint8)
    data = b"\x89PNG"
    url = "https://example.com/*.jpg"
    missing = str(tree / "missing.jpg")
    found = expand_sources([url, data, image, array, missing])
    assert found[0] == url and found[1] is data and found[2] is image and found[3] is array
    assert found[4] == missing


def test_a_single_source_is_a_list_of_one(tree: Path) -> None:
    array = np.zeros((3, 3), np.uint8)
    assert expand_sources(array)[0] is array  # not its three rows
    assert rel(expand_sources(str(tree / "sub")), tree) == ["sub/c.gif", "sub/deeper/d.webp", "sub/z.TIFF"]
    assert expand_sources(b"\x89PNG") == [b"\x89PNG"]


def test_order_of_items_is_kept(tree: Path) -> None:
    items = [str(tree / "sub"), "https://example.com/a.png", str(tree / "b.jpg"), str(tree / "sub-x")]
    found = expand_sources(items)
    assert rel([found[0], found[1], found[2]], tree) == ["sub/c.gif", "sub/deeper/d.webp", "sub/z.TIFF"]
    assert found[3] == "https://example.com/a.png"
    assert rel(found[4:], tree) == ["b.jpg", "sub-x/e.bmp"]


def test_list_file(tree: Path, tmp_path: Path) -> None:
    listing = tree / "list.txt"
    listing.write_text(
        "# photos to caption\n"
        "\n"
        "b.jpg\n"
        "   sub/c.gif   \n"
        f"{tree / 'A.PNG'}\n"
        "https://example.com/x.png\n"
        "sub/deeper\n"
        "sub/*.TIFF\n"
        "gone.jpg\n"
    )
    found = expand_sources([f"@{listing}", str(tree / "b.jpg")])
    assert found[3] == "https://example.com/x.png"
    others = [p for i, p in enumerate(found) if i != 3]
    # Relative entries are taken relative to the list file's folder, not the working directory.
    assert rel(others, tree) == [
        "b.jpg",
        "sub/c.gif",
        "A.PNG",
        "sub/deeper/d.webp",
        "sub/z.TIFF",
        "gone.jpg",
        "b.jpg",
    ]


def test_list_file_relative_to_working_directory(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    Path("list.txt").write_text("b.jpg\nsub\n")
    assert expand_sources(["@list.txt"]) == [
        "b.jpg",
        os.path.join("sub", "c.gif"),
        os.path.join("sub", "deeper", "d.webp"),
        os.path.join("sub", "z.TIFF"),
    ]


def test_missing_or_unreadable_list_passes_through(tree: Path) -> None:
    missing = f"@{tree / 'nolist.txt'}"
    binary = tree / "binary.lst"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert expand_sources([missing, f"@{binary}"]) == [missing, f"@{binary}"]


def test_a_batch_goes_on_past_bad_items(tree: Path) -> None:
    """The reason bad items pass through: each one fails on its own when loaded."""
    given = [str(tree / "b.jpg"), str(tree / "missing.jpg"), str(tree / "*.nothing"), tree / "sub"]
    items = expand_sources(given)
    outcomes: list[str] = []
    for item in items:
        try:
            load_image(item)
            outcomes.append("ok")
        except ImageError as e:
            outcomes.append(type(e).__name__)
    assert outcomes == ["ok", "ImageNotFoundError", "ImageNotFoundError", "ok", "ok", "ok"]
    with pytest.raises(ImageNotFoundError, match="missing"):
        load_image(items[1])
