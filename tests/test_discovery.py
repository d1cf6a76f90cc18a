import os

from edgefer.discovery import discover, empty_folders, images_below


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_scan_rules(tmp_path):
    for name in ("b.jpg", "a.PNG", "c.webp", ".hidden.jpg", "notes.txt", "sub/d.jpg"):
        touch(tmp_path / name)
    (tmp_path / "folder.jpg").mkdir()
    os.symlink(tmp_path / "missing.png", tmp_path / "broken.png")
    found = discover([tmp_path])
    names = [os.path.relpath(p, tmp_path) for p in found]
    # sorted; hidden and non-image files skipped; broken links and dirs named like images kept
    assert names == ["a.PNG", "b.jpg", "broken.png", "c.webp", "folder.jpg"]


def test_recursive_descends_but_not_into_hidden_or_symlinked_dirs(tmp_path):
    touch(tmp_path / "sub" / "deep" / "x.jpg")
    touch(tmp_path / ".git" / "y.jpg")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")  # a cycle: must not recurse forever
    found = [os.path.relpath(p, tmp_path) for p in discover([tmp_path], recursive=True)]
    assert found == [os.path.join("sub", "deep", "x.jpg")]


def test_named_files_are_always_included_once(tmp_path):
    hidden = touch(tmp_path / ".secret.jpg")
    text = touch(tmp_path / "readme.txt")
    image = touch(tmp_path / "z.jpg")
    missing = tmp_path / "nope.jpg"
    found = discover([image, text, hidden, missing, tmp_path])
    assert found == sorted({str(hidden), str(text), str(image), str(missing)})


def test_fifos_in_a_folder_are_skipped(tmp_path):
    # Opening a FIFO without a writer blocks forever, and Ctrl-C could not end the run.
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert discover([tmp_path]) == [str(tmp_path / "a.jpg")]
    # ... and so does a symlink to one (it was taken for a file and hung the run).
    os.symlink("pipe.jpg", tmp_path / "link.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    os.symlink("gone.jpg", tmp_path / "broken.jpg")  # still listed: it gets its error row
    names = ["a.jpg", "b.jpg", "broken.jpg"]
    assert discover([tmp_path]) == [str(tmp_path / n) for n in names]


def test_one_path_per_file_however_it_is_spelled(tmp_path, monkeypatch):
    image = touch(tmp_path / "d" / "x.jpg")
    monkeypatch.chdir(tmp_path)
    found = discover(["d", "d/x.jpg", str(image), "./d/../d/x.jpg"])
    assert found == [os.path.join("d", "x.jpg")]


def test_unlistable_subfolders_are_reported(tmp_path, monkeypatch):
    touch(tmp_path / "ok" / "a.jpg")
    touch(tmp_path / "secret" / "b.jpg")
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 would not stop root, who runs these tests in CI
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    unlistable = []
    found = discover([tmp_path], recursive=True, unlistable=unlistable)
    assert found == [str(tmp_path / "ok" / "a.jpg")]
    assert unlistable == [f"{tmp_path / 'secret'}: Permission denied"]


def test_jpeg_spellings_are_images(tmp_path):
    for name in ("a.jfif", "b.jpe", "c.JPEG"):
        touch(tmp_path / name)
    assert [os.path.basename(p) for p in discover([tmp_path])] == ["a.jfif", "b.jpe", "c.JPEG"]


def test_images_below_looks_only_in_subfolders_and_as_recursive_would(tmp_path):
    touch(tmp_path / "top.jpg")
    touch(tmp_path / "a" / "notes.txt")
    touch(tmp_path / ".hidden" / "x.jpg")
    assert not images_below(tmp_path)  # its own image, a text file, a hidden folder: no
    os.symlink(tmp_path / ".hidden", tmp_path / "linked")
    assert not images_below(tmp_path)  # symlinked folders are not followed
    touch(tmp_path / "a" / "b" / "y.png")
    assert images_below(tmp_path) == str(tmp_path / "a") and not images_below(tmp_path / "top.jpg")
    assert images_below(tmp_path, exclude=[tmp_path / "a" / "b"]) is None  # --done-dir, say


def test_empty_folders_are_those_that_gave_no_file_however_spelled(tmp_path, monkeypatch):
    touch(tmp_path / "a" / "x.jpg")
    touch(tmp_path / "b" / "c" / "y.jpg")
    touch(tmp_path / "d" / "z.txt")
    monkeypatch.chdir(tmp_path)
    inputs = ["a", str(tmp_path / "a"), "b", "d", "a/x.jpg"]
    assert empty_folders(inputs, discover(inputs)) == ["b", "d"]
    assert empty_folders(inputs, discover(inputs, recursive=True), recursive=True) == ["d"]
    assert empty_folders(["./b/"], discover(["./b/"], recursive=True), recursive=True) == []


def test_only_descriptors_themselves_are_streams(tmp_path):
    # /dev/fd/N/x.jpg (N a folder's descriptor) is a file in a folder, not this process's
    # stream: it was read as a pipe, and --append never skipped it.
    from edgefer.preprocess import Stream

    found = discover(["/dev/stdin", "/dev/fd/987/x.jpg", "/proc/self/fd/987"])
    kinds = {p: isinstance(p, Stream) for p in found}
    assert kinds == {"/dev/stdin": True, "/dev/fd/987/x.jpg": False, "/proc/self/fd/987": True}
