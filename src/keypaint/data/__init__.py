"""Training data: building the built-in emoji set, reading captioned folders, varying captions."""

from keypaint.data.captions import augment, emoji_caption
from keypaint.data.emoji import EMOJI_SETS, EmojiDataConfig, EmojiDataReport, build_emoji_dataset
from keypaint.data.errors import DataError
from keypaint.data.folder import Record, load_folder
from keypaint.data.split import is_heldout

__all__ = [
    "EMOJI_SETS",
    "DataError",
    "EmojiDataConfig",
    "EmojiDataReport",
    "Record",
    "augment",
    "build_emoji_dataset",
    "emoji_caption",
    "is_heldout",
    "load_folder",
]
