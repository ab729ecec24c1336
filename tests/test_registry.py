"""The registry type: names, settings, unknown names, entry-point plug-ins loaded lazily."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from medattr.errors import InputError
from medattr.registry import Registry, Setting, UnknownNameError, parse_flag


def test_register_lookup_and_names() -> None:
    reg: Registry[object] = Registry("shape", "medattr.test-shapes")

    @reg.register("disc")
    class Disc:
        """A disc. More text."""

        settings = (Setting("radius_mm", 5.0, "radius", type=float, minimum=0.0),)

    assert reg.names() == ("disc",) and "disc" in reg and "square" not in reg
    assert reg.get("disc") is Disc and Disc.registry_name == "disc"  # type: ignore[attr-defined]
    assert reg.summary("disc") == "A disc"
    assert list(reg.settings()) == ["radius_mm"]
    with pytest.raises(UnknownNameError, match=r"unknown shape 'square'; available: disc"):
        reg.get("square")
    with pytest.raises(ValueError, match="registered already"):

        @reg.register("disc")
        class Other:
            pass

    with pytest.raises(ValueError, match="non-empty word"):
        reg.register("a:b")
    with pytest.raises(TypeError, match="must hold Setting objects"):

        @reg.register("bad")
        class Bad:
            settings = ("radius_mm",)


def test_unknown_names_are_input_errors() -> None:
    assert issubclass(UnknownNameError, InputError) and issubclass(UnknownNameError, ValueError)


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (Setting("n", 3, "", type=int, minimum=1), "7", 7),
        (Setting("n", 3, "", type=int, minimum=1), 4.0, 4),
        (Setting("f", 1.0, "", type=float, minimum=0.0), "0.25", 0.25),
        (Setting("c", "a", "", choices=("a", "b")), "b", "b"),
        (Setting("o", None, "", type=float, optional=True), None, None),
        (Setting("l", [], "", nargs="+"), "x", ["x"]),
        (Setting("l", [], "", nargs="+"), ("x", "y"), ["x", "y"]),
        (Setting("b", False, "", type=bool), "yes", True),
        (Setting("b", False, "", type=bool), "0", False),
    ],
)
def test_settings_convert_good_values(setting: Setting, value: object, expected: object) -> None:
    assert setting.convert(value) == expected


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (Setting("n_steps", 3, "", type=int, minimum=1), "many", "must be a positive integer"),
        (Setting("n_steps", 3, "", type=int, minimum=1), 0, "must be >= 1"),
        (Setting("n_steps", 3, "", type=int, minimum=1), 2.5, "must be an integer"),
        (Setting("n_steps", 3, "", type=int, minimum=1), True, "must be a positive integer"),
        (Setting("sigma", 1.0, "", type=float, minimum=0.0), float("nan"), "finite number"),
        (Setting("sigma", 1.0, "", type=float, minimum=0.0), -1.0, "must be >= 0.0"),
        (Setting("p", 0.2, "", type=float, minimum=0.0, exclusive_minimum=True), 0.0, "> 0.0"),
        (Setting("p", 0.2, "", type=float, maximum=1.0), 1.5, "<= 1.0"),
        (Setting("rule", "a", "", choices=("a", "b")), "c", "must be one of 'a', 'b'"),
        (Setting("x", 1.0, "", type=float), None, "must not be empty"),
        (Setting("flag", False, "", type=bool), "maybe", "must be true or false"),
    ],
)
def test_settings_refuse_bad_values_naming_the_setting(
    setting: Setting, value: object, message: str
) -> None:
    with pytest.raises(InputError, match=message) as err:
        setting.convert(value)
    assert str(err.value).startswith(setting.name)
    with pytest.raises(InputError, match=r"^MEDATTR_X"):
        setting.convert(value, "MEDATTR_X")


def test_parse_flag_reads_config_strings() -> None:
    assert parse_flag("false", "split_paths") is False and parse_flag(1, "x") is True
    with pytest.raises(InputError, match="split_paths must be true or false"):
        parse_flag("maybe", "split_paths")


def _dist(site: Path, package: str, group: str, entries: dict[str, str], source: str) -> None:
    (site / f"{package}.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")


def test_entry_point_plug_ins_load_lazily(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _dist(
        site,
        "lazy_shapes_pkg",
        "medattr.lazy-shapes",
        {"star": "lazy_shapes_pkg:Star", "broken": "lazy_shapes_pkg:Missing"},
        """
        class Star:
            '''A star.'''
        """,
    )
    reg: Registry[object] = Registry("shape", "medattr.lazy-shapes")
    sys.path.insert(0, str(site))
    try:
        assert reg.names() == ("star", "broken")  # the names, from the metadata alone
        assert "lazy_shapes_pkg" not in sys.modules  # not imported until looked up
        assert reg.get("star").__name__ == "Star"
        assert "lazy_shapes_pkg" in sys.modules
        with pytest.raises(InputError, match=r"the shape 'broken' \(lazy_shapes_pkg:Missing\)"):
            reg.get("broken")
        assert reg.names() == ("star",)  # a plug-in that cannot be imported is dropped
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("lazy_shapes_pkg", None)


def test_scan_imports_the_modules_that_register_themselves(tmp_path: Path) -> None:
    pkg = tmp_path / "scan_pkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from medattr.registry import Registry\nREG = Registry('x', 'g')\n"
    )
    (pkg / "one.py").write_text(
        "from scan_pkg_for_test import REG\n@REG.register('one')\nclass One: pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import scan_pkg_for_test  # type: ignore[import-not-found]

        scan_pkg_for_test.REG.scan = ("scan_pkg_for_test",)
        assert scan_pkg_for_test.REG.names() == ("one",)
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("scan_pkg_for_test", "scan_pkg_for_test.one"):
            sys.modules.pop(name, None)
