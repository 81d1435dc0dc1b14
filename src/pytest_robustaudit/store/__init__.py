"""The activation store: extract once per content, let every analysis read the stored rows.

Pure code (numpy and filelock only, no pytest, no model libraries)::

    keys     content_key, FileHasher, hash_files   the one home of content identity
    entries  ActivationStore, Entry, EntryWriter   checked folders renamed into place
    locks    per-key file locks; ActivationStore.get_or_create builds an entry once across processes
    manage   list_entries, clear, prune, verify, parse_age, format_table, cache_main

See docs/store.md for the layout on disk and the safety assumptions.
"""

from .entries import STORE_DTYPES, ActivationStore, Entry, EntryWriter, LayerInfo
from .errors import RottenEntry, StoreError
from .keys import (STORE_FORMAT_VERSION, FileHasher, content_key, extraction_parts, hash_files, library_versions,
                   sequence_hash)
from .manage import (STORE_CACHE_NAME, EntryRecord, cache_main, clear, default_store_dir, format_table,
                     list_entries, parse_age, prune, verify)

__all__ = [
    "STORE_CACHE_NAME", "STORE_DTYPES", "STORE_FORMAT_VERSION", "ActivationStore", "Entry", "EntryRecord",
    "EntryWriter", "FileHasher", "extraction_parts", "library_versions", "LayerInfo", "RottenEntry", "StoreError", "cache_main", "clear", "content_key",
    "default_store_dir", "format_table", "hash_files", "list_entries", "parse_age", "prune", "sequence_hash", "verify",
]
