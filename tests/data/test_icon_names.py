"""Icon names to label and variant words, categories to tags, and which icons stay out."""

from __future__ import annotations

import pytest

from keypaint.data.icon_names import category_tags, exclusion, name_words, parse_name

MATERIAL = ["rounded", "sharp", "outline", "outline-rounded", "outline-sharp"]


@pytest.mark.parametrize(
    ("name", "suffixes", "default", "label", "variant"),
    [
        ("arrow-left-outline-rounded", MATERIAL, (), "arrow left", ("outline", "rounded")),
        ("arrow-left-rounded", MATERIAL, (), "arrow left", ("rounded",)),
        ("arrow-left", MATERIAL, (), "arrow left", ()),
        ("acorn-fill", ["fill", "bold"], (), "acorn", ("filled",)),
        ("home", ["filled"], ("outline",), "home", ("outline",)),
        ("add-circle-24", ["16", "24"], (), "add circle", ("24",)),
        ("allergies-24px", ["24px", "outline-24px"], ("filled",), "allergies", ("filled", "24px")),
        ("allergies-outline-24px", ["24px", "outline-24px"], ("filled",), "allergies", ("outline", "24px")),
        ("bold", ["bold"], (), "bold", ()),  # the icon named like a suffix keeps its name
        ("heart-broken", [], (), "heart broken", ()),  # not a listed suffix of this set
    ],
)
def test_variant_suffixes_leave_the_name(
    name: str, suffixes: list[str], default: tuple[str, ...], label: str, variant: tuple[str, ...]
) -> None:
    parsed = parse_name(name, suffixes, default)
    assert (parsed.label, parsed.variant) == (label, variant)


def test_drawing_numbers_are_dropped_but_meaningful_numbers_stay() -> None:
    assert name_words("zoom-in-magnifier-1") == ("zoom", "in", "magnifier")
    assert name_words("home-01") == ("home",)
    assert name_words("number-1") == ("number", "1")
    assert name_words("circle-number-1") == ("circle", "number", "1")
    assert name_words("pen-2") == ("pen", "2")
    assert name_words("battery-10") == ("battery", "10")


def test_categories_become_lowercase_keywords() -> None:
    assert category_tags(["FoodDrink", "Account / User", "Audio & Video", "FoodDrink"]) == [
        "food drink", "account", "user", "audio & video",
    ]


@pytest.mark.parametrize(
    ("name", "categories", "reason"),
    [
        ("github", ["Brand / Logo"], "brand"),
        ("bee", ["Brand"], "brand"),
        ("brand-adobe", [], "brand"),
        ("github-logo", [], "brand"),
        ("android", [], "brand"),
        ("flag-de", [], "flag"),
        ("germany", ["Flags"], "flag"),
        ("file-type-pdf", [], "file-type"),
        ("file-pdf", [], "file-type"),
        ("android-cell-4-bar", [], None),
        ("flag-up", [], None),
        ("flag-checkered", [], None),
        ("file-document", ["Files"], None),
        ("apple", ["FoodDrink"], None),
    ],
)
def test_brands_flags_and_file_types_stay_out(name: str, categories: list[str], reason: str | None) -> None:
    assert exclusion(parse_name(name, [], ()), categories) == reason
