"""Icon names to caption words: `arrow-left-outline` is the label "arrow left" in the variant "outline".

Also decides which icons stay out of the data: brands and logos, flags, and file-type icons, by the
set's category where its JSON has one, else by the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keypaint.data.icon_sets import VARIANT_SPELLING

# Words after which a trailing number is the thing's meaning ("number-1"), not a second drawing ("pen-2").
NUMBER_WORDS = frozenset({"number", "numeric", "digit", "num", "counter", "dice", "page", "filter", "looks"})
EXCLUDED_CATEGORY = re.compile(r"brand|logo|flags?\b|file ?types?", re.IGNORECASE)
BRAND_WORDS = frozenset({
    "logo", "logos", "brand", "github", "gitlab", "google", "facebook", "twitter", "instagram", "linkedin",
    "youtube", "whatsapp", "telegram", "discord", "slack", "reddit", "tiktok", "figma", "dribbble", "behance",
    "codepen", "codesandbox", "trello", "twitch", "pinterest", "snapchat", "spotify", "paypal", "amazon",
    "microsoft", "adobe", "dropbox", "skype", "vimeo", "wordpress", "npm", "docker", "chrome", "firefox",
    "playstation", "xbox", "nintendo", "mastodon", "bluesky", "wechat", "weibo", "kickstarter",
    "patreon", "bitcoin", "ethereum", "500px", "airbnb", "uber", "netflix", "shopify", "stackoverflow",
})
SHORT = frozenset({"up", "on", "in", "no", "ok", "go", "to", "of", "at", "by", "my", "me", "we", "us", "so"})
FILE_TYPES = frozenset({
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "csv", "zip", "rar", "png", "jpg", "jpeg", "gif",
    "svg", "mp3", "mp4", "txt", "html", "css", "js", "json", "xml", "psd", "exe", "tsx", "jsx", "py", "md",
    "sql",
})


@dataclass(frozen=True)
class IconName:
    """An icon name split into the thing it draws and the variant it is drawn in."""

    name: str  # as in the set, e.g. "arrow-left-outline"
    base: str  # without the variant suffix, e.g. "arrow-left"
    words: tuple[str, ...]  # e.g. ("arrow", "left")
    variant: tuple[str, ...]  # e.g. ("outline",); () for the set's unsuffixed drawing

    @property
    def label(self) -> str:
        return " ".join(self.words)


def split_variant(name: str, suffixes: list[str]) -> tuple[str, str]:
    """(base, suffix): the longest listed suffix the name ends with after a '-', else (name, "")."""
    for suffix in sorted((s for s in suffixes if s), key=len, reverse=True):
        if name.endswith(f"-{suffix}") and len(name) > len(suffix) + 1:
            return name[: -len(suffix) - 1], suffix
    return name, ""


def variant_words(suffix: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """"outline-rounded" -> ("outline", "rounded"); "fill" -> ("filled",); "" -> the set's default,
    which a size alone keeps: "24px" -> ("filled", "24px") where the default is ("filled",)."""
    words = tuple(VARIANT_SPELLING.get(w, w) for w in suffix.split("-") if w)
    if all(re.fullmatch(r"\d+(?:px)?", w) for w in words):
        return default + words  # "24px" of healthicons is its filled drawing on a 24 px grid
    return words


def name_words(base: str) -> tuple[str, ...]:
    """Lowercase words of a name; a drawing number ("-01", or "-1" after two words) is dropped."""
    words = [w for w in re.split(r"[-_\s]+", base.lower()) if w]
    if len(words) > 1 and words[-2] not in NUMBER_WORDS and (
        re.fullmatch(r"0\d", words[-1]) or (len(words) > 2 and re.fullmatch(r"\d", words[-1]))
    ):
        words.pop()  # "home-01", "zoom-in-magnifier-1": numbered drawings of a home, a zoom-in magnifier
    return tuple(words)


def parse_name(name: str, suffixes: list[str], default: tuple[str, ...]) -> IconName:
    base, suffix = split_variant(name, suffixes)
    return IconName(name, base, name_words(base), variant_words(suffix, default))


def category_words(category: str) -> str:
    """A category as a caption keyword: "FoodDrink" -> "food drink", "Account / User" -> "account, user"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", category)
    return " ".join(spaced.replace("/", ",").split()).lower()


def category_tags(categories: list[str]) -> list[str]:
    """Every keyword of the icon's categories, in order, once."""
    tags: list[str] = []
    for category in categories:
        for part in category_words(category).split(","):
            if (part := part.strip()) and part not in tags:
                tags.append(part)
    return tags


def exclusion(icon: IconName, categories: list[str]) -> str | None:
    """"brand", "flag" or "file-type" for icons that stay out, else None."""
    for category in categories:
        if match := EXCLUDED_CATEGORY.search(category):
            word = match.group(0).lower()
            return "flag" if word.startswith("flag") else "file-type" if word.startswith("file") else "brand"
    words = icon.words or ("",)
    if BRAND_WORDS & set(words) or icon.name.startswith("brand-"):
        return "brand"
    if words[0] == "android" and len(words) <= 2:
        return "brand"  # the Android robot; "android-cell-4-bar" is a signal meter
    country = len(words) == 2 and re.fullmatch(r"[a-z]{2}", words[1]) and words[1] not in SHORT
    if words[0] == "flag" and country:
        return "flag"  # "flag-de": a country flag; "flag-up", "flag-checkered" are objects
    if "filetype" in words or ("file" in words and FILE_TYPES & set(words)):
        return "file-type"
    return None
