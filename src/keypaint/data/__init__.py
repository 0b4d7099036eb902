"""Training data: building the emoji and icon sets, reading captioned folders, varying captions."""

from keypaint.data.balance import record_weights
from keypaint.data.captions import augment, emoji_caption, icon_caption
from keypaint.data.emoji import EMOJI_SETS, EmojiDataConfig, EmojiDataReport, build_emoji_dataset
from keypaint.data.errors import DataError
from keypaint.data.folder import Record, load_folder
from keypaint.data.icon_sets import ICON_SETS
from keypaint.data.icons import IconDataConfig, IconDataReport, build_icons_dataset
from keypaint.data.split import is_heldout

__all__ = [
    "EMOJI_SETS",
    "ICON_SETS",
    "DataError",
    "EmojiDataConfig",
    "EmojiDataReport",
    "IconDataConfig",
    "IconDataReport",
    "Record",
    "augment",
    "build_emoji_dataset",
    "build_icons_dataset",
    "emoji_caption",
    "icon_caption",
    "is_heldout",
    "load_folder",
    "record_weights",
]
