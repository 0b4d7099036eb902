"""The icon set registry: every listed set, and the sets that must never be trained on."""

from __future__ import annotations

import pytest

from keypaint.data import DataError
from keypaint.data.emoji import EMOJI_SETS
from keypaint.data.icon_sets import (
    ICON_SETS,
    LOOK_KEYWORDS,
    excluded_reason,
    refuse_excluded,
    select_icon_sets,
)

LISTED = [
    "game-icons", "mdi", "material-symbols", "ph", "tabler", "lucide", "solar", "hugeicons", "carbon",
    "iconoir", "mingcute", "fa6-solid", "healthicons", "medical-icon", "maki", "uim", "pixelarticons",
    "streamline-pixel", "streamline-plump", "streamline-flex", "flat-color-icons", "fluent-color",
    "streamline-ultimate-color", "streamline-freehand-color", "icon-park-twotone", "duo-icons",
    "meteocons",
]
EVALUATION = ("fluent-emoji-high-contrast", "emojione-monotone")


def test_registry_holds_the_listed_iconify_sets() -> None:
    assert [s.prefix for s in ICON_SETS] == LISTED
    for source in ICON_SETS:
        assert source.package.name == f"@iconify-json/{source.prefix}"
        assert source.look in LOOK_KEYWORDS
    looks = {s.look for s in ICON_SETS}
    assert looks == {"line", "filled", "duotone", "pixel", "hand-drawn", "color"}


@pytest.mark.parametrize("name", [*EVALUATION, *(f"@iconify-json/{n}" for n in EVALUATION)])
def test_evaluation_sets_are_refused_by_prefix_and_package(name: str) -> None:
    assert "never trained on" in str(excluded_reason(name))
    with pytest.raises(DataError, match="excluded: the style-learning evaluation set"):
        refuse_excluded(["tabler", name])


def test_no_registry_package_is_an_evaluation_or_excluded_set() -> None:
    packages = [s.package.name for s in ICON_SETS] + [s.package.name for s in EMOJI_SETS]
    assert all(excluded_reason(p) is None for p in packages)
    assert not {p.removeprefix("@iconify-json/") for p in packages} & set(EVALUATION)


def test_select_keeps_registry_order_and_names_unknown_sets() -> None:
    assert [s.prefix for s in select_icon_sets(("ph", "tabler"))] == ["ph", "tabler"]
    assert len(select_icon_sets(None)) == len(LISTED)
    with pytest.raises(DataError, match="unknown icon set octicons"):
        select_icon_sets(("tabler", "octicons"))
    with pytest.raises(DataError, match="simple-icons is excluded: a brand/logo set"):
        select_icon_sets(("simple-icons",))
