from pathlib import Path

import pytest

from core.settings import load_settings
from core.sources.base import SourceError
from core.sources.roots import resolve_root, safe_join, source_name_for


def test_safe_join_accepts_plain_relative_paths(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "17/1/2.png") == tmp_path / "17" / "1" / "2.png"


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "17/../../x.png", "a\x00b"])
def test_safe_join_refuses_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SourceError):
        safe_join(tmp_path, bad)


def test_safe_join_refuses_symlink_leading_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "17").symlink_to(tmp_path)
    with pytest.raises(SourceError, match="outside its root"):
        safe_join(root, "17/x.png")


def test_roots_resolve_by_setting_then_recorded_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", f'{{"ortho": "{tmp_path}"}}')
    settings = load_settings()
    assert source_name_for(tmp_path, settings) == "ortho"
    assert resolve_root("ortho", settings) == tmp_path
    assert resolve_root("other", settings, recorded_path="/srv/x") == Path("/srv/x")
    with pytest.raises(SourceError, match=r"known: ortho\)$"):
        resolve_root("other", settings)


def test_derived_root_names_are_stable_and_distinct(tmp_path: Path) -> None:
    settings = load_settings()
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "a").mkdir(parents=True)
    first = source_name_for(tmp_path / "a", settings)
    assert first == source_name_for(tmp_path / "a", settings)
    assert first != source_name_for(tmp_path / "b" / "a", settings)
