"""Readers: the first step of a pipeline, turning files or records into `Document`s.

* `DirectoryReader`: a source tree or git checkout, one repo or one repo per subdirectory.
* `PackageReader`: installed Python packages by import name, wherever `import` finds them.
* `JsonlReader`, `ParquetReader`: record files; `HubReader`: a hub dataset (online only).
"""

from codelm.data.readers.base import DEFAULT_MAX_BYTES, Reader, Unreadable, decode_text
from codelm.data.readers.packages import PackageReader
from codelm.data.readers.records import HubReader, JsonlReader, ParquetReader, RecordReader
from codelm.data.readers.tree import DirectoryReader, git_head

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DirectoryReader",
    "HubReader",
    "JsonlReader",
    "PackageReader",
    "ParquetReader",
    "Reader",
    "RecordReader",
    "Unreadable",
    "decode_text",
    "git_head",
]
