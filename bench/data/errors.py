"""Errors raised when a file-backed dataset is missing or does not match its published checksums."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looked; the message says what, where and how to fix it."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but is damaged: its checksum differs from the published one, or its contents cannot
    be read as what it should hold; the message names the file and what to do."""
