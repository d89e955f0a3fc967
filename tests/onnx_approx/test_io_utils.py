import pytest

import os

from onnx_approx.io_utils import OutputExistsError, atomic_output_dir, atomic_write_text


class TestAtomicWrites:
    def test_text_replaces_whole_file(self, tmp_path):
        path = tmp_path / "a" / "f.txt"
        atomic_write_text(path, "one")
        atomic_write_text(path, "two")
        assert path.read_text() == "two"
        assert [p.name for p in path.parent.iterdir()] == ["f.txt"]
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def test_failed_folder_leaves_nothing(self, tmp_path):
        out = tmp_path / "out"
        with pytest.raises(RuntimeError):
            with atomic_output_dir(out) as tmp:
                (tmp / "model.onnx").write_text("partial")
                raise RuntimeError("boom")
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []

    def test_existing_folder_needs_overwrite(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        (out / "old.txt").write_text("old")
        with pytest.raises(OutputExistsError, match="--overwrite"):
            with atomic_output_dir(out):
                pass
        with atomic_output_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
        assert [p.name for p in out.iterdir()] == ["new.txt"]
        assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
