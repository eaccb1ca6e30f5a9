"""The server's view of a ``blipkit index``: hybrid text search, and image ids (content hashes) resolved to
the files the index lists."""

from __future__ import annotations

import os
from pathlib import Path

from blipkit.blip import Blip
from blipkit.serve.search import Hit


class IndexBackend:
    """Search an index with the server's model; look images up by content hash."""

    def __init__(self, path: Path, blip: Blip) -> None:
        from blipkit.index.builder import open_for

        self.blip = blip
        # create=False: a typo in --db must not leave an empty index behind; another model's index is
        # refused here (IndexModelMismatchError), at startup.
        self.index = open_for(blip, str(path), create=False)

    def size(self) -> int:
        return self.index.count()

    def search(self, query: str, limit: int) -> list[Hit]:
        from blipkit.index.search import search

        found = search(self.index, self.blip, query, k=limit)
        hashes = {row["path"]: row["hash"] for row in self.index.rows_where("path", [h.path for h in found],
                                                                             ["path", "hash"])}
        hits: list[Hit] = []
        seen: set[str] = set()
        for hit in found:
            image_id = hashes.get(hit.path)
            # the same content under two names is one image to a viewer
            if image_id is None or image_id in seen:
                continue
            seen.add(image_id)
            hits.append(Hit(id=image_id, score=hit.score, caption=hit.caption))
        return hits

    def path_of(self, image_id: str) -> Path | None:
        """An indexed file holding the image ``image_id``, still as it was indexed (same size and mtime),
        or None."""
        rows = self.index.rows_where("hash", [image_id], ["path", "hash", "size", "mtime_ns"])
        for row in rows:
            try:
                st = os.stat(row["path"])
            except OSError:
                continue
            if st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]:
                return Path(row["path"])
        return None
