"""The colour of each class, shared by ``tileclass render`` and the HTTP server's map overlay.

Colours are keyed by the class's position in its model's class list, so a class keeps its colour across runs,
regions and views: Paul Tol's "muted" qualitative scheme, then Okabe & Ito's orange, blue and yellow — chosen to
stay distinguishable with the common colour-vision deficiencies. Classes beyond twelve reuse the palette.
"""

from __future__ import annotations

Colour = tuple[int, int, int]

PALETTE: tuple[Colour, ...] = (
    (0xCC, 0x66, 0x77), (0x33, 0x22, 0x88), (0xDD, 0xCC, 0x77), (0x11, 0x77, 0x33), (0x88, 0xCC, 0xEE),
    (0x88, 0x22, 0x55), (0x44, 0xAA, 0x99), (0x99, 0x99, 0x33), (0xAA, 0x44, 0x99), (0xE6, 0x9F, 0x00),
    (0x00, 0x72, 0xB2), (0xF0, 0xE4, 0x42),
)


def class_colour(index: int) -> Colour:
    """The colour of the class at ``index`` in its model's class list."""
    return PALETTE[index % len(PALETTE)]


def hex_colour(colour: Colour) -> str:
    """``#rrggbb``, as web pages and JSON documents spell a colour."""
    return "#{:02x}{:02x}{:02x}".format(*colour)
