"""Probing the output directory before any work, and the free-space check."""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

import pytest

from medattr._fs import check_free_space, human_size, probe_output_dir
from medattr.errors import InputError, ResourceError


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_new_or_existing_directory_passes_and_nothing_is_left(tmp_path: Path) -> None:
    probe_output_dir(tmp_path / "a" / "b" / "c")
    assert not (tmp_path / "a").exists()
    (tmp_path / "d").mkdir()
    probe_output_dir(tmp_path / "d")
    assert _listing(tmp_path) == ["d"] and _listing(tmp_path / "d") == []


def test_a_file_on_the_way_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="exists and is not a directory"):
        probe_output_dir(tmp_path / "f")
    with pytest.raises(InputError, match=r"f is a file, not a directory"):
        probe_output_dir(tmp_path / "f" / "out" / "deeper")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_a_refusing_file_system_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match=r"/sys/medattr-x.*cannot be created in /sys"):
        probe_output_dir("/sys/medattr-x")
    with pytest.raises(ResourceError, match="not writable"):
        probe_output_dir("/sys/kernel")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_a_read_only_directory_is_a_resource_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ResourceError, match="Permission denied"):
            probe_output_dir(ro / "out")
    finally:
        ro.chmod(0o755)


def test_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_free_space(tmp_path / "new", 1)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(100, 90, 10 * 2**20))
    check_free_space(tmp_path / "new", 2**20)
    with pytest.raises(ResourceError, match=r"about 20.0 MiB needed, 10.0 MiB free"):
        check_free_space(tmp_path / "new", 20 * 2**20)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (2**31, "2.0 GiB")]
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text
