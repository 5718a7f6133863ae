"""Errors raised when a dataset is missing, does not match its published checksums, or holds too few items."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looked; the message says what, where and how to fix it."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but is damaged: its checksum differs from the published one, or its contents cannot
    be read as what it should hold; the message names the file and what to do."""


class DatasetTooSmallError(ValueError):
    """A dataset holds fewer items than were asked of it (`available` against `asked`)."""

    def __init__(self, name: str, available: int, asked: int):
        self.name, self.available, self.asked = name, available, asked
        super().__init__(f"{name}: holds {available} items, {asked} asked for")
