import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import TileError
from core.tiles import Tile, flip_row


def test_parse_and_str_round_trip() -> None:
    tile = Tile.parse("17/70420/42997")
    assert tile == Tile(17, 70420, 42997)
    assert str(tile) == "17/70420/42997"


@pytest.mark.parametrize("spec", ["17/70420", "a/b/c", "25/0/0", "3/8/0", "3/0/8", ""])
def test_parse_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(TileError):
        Tile.parse(spec)


def test_out_of_range_message_names_valid_range() -> None:
    with pytest.raises(TileError, match=r"x and y must be 0\.\.7 at zoom 3"):
        Tile.checked(3, 8, 0)


@given(st.integers(0, 24).flatmap(lambda z: st.tuples(st.just(z), st.integers(0, 2**z - 1), st.integers(0, 2**z - 1))))
def test_tms_row_flip_is_an_involution(zxy: tuple[int, int, int]) -> None:
    z, x, y = zxy
    flipped = flip_row(z, y)
    assert flip_row(z, flipped) == y and 0 <= flipped < 2**z
    assert Tile.checked(z, x, flipped) == Tile(z, x, flipped)


@given(st.floats(-179.99, 179.99), st.floats(-85.0, 85.0), st.integers(0, 22))
def test_point_lies_inside_its_tile(lon: float, lat: float, zoom: int) -> None:
    tile = Tile.at_point(lon, lat, zoom)
    west, south, east, north = tile.bounds()
    assert west - 1e-9 <= lon <= east + 1e-9
    assert south - 1e-9 <= lat <= north + 1e-9


def test_message_paths_are_normalised_so_that_one_file_has_one_spelling() -> None:
    spellings = ["a//b.png", "./a/b.png", "a/b.png/", "a/./b.png"]
    assert {Tile.from_row([None, None, None, path]).path for path in spellings} == {"a/b.png"}
    assert Tile.from_row([3, 1, 2, ".//3/1/2.png"]).path == "3/1/2.png"
    # What would leave the root keeps its telltale parts, for safe_join to refuse.
    assert Tile.from_row([None, None, None, "a/../../etc/passwd"]).path == "a/../../etc/passwd"
    assert Tile.from_row([None, None, None, "//etc/passwd"]).path == "/etc/passwd"
