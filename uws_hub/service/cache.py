"""A cache of serialized workspace listings, keyed by the owner's listing version.

The database bumps ``User.workspaces_version`` in the same transaction as any change to the
user's workspaces (see `uws_hub.db.session`), so an entry for the version a request reads is
exactly what the query would return: the cache can be stale only if that invariant is broken.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ListingCache:
    def __init__(self, max_bytes: int = 64 * 1024**2):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._size = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable, version: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, version: int, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:
            return  # too big to be worth holding
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old[1])
        self._entries[key] = (version, body)
        self._size += len(body)
        while self._size > self.max_bytes and self._entries:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._size -= len(evicted)
