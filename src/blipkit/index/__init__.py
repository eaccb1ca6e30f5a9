"""A persistent, incremental image index (LanceDB on disk) and search over it.

    from blipkit.index import ImageIndex, add_images, open_for, search
    blip = blipkit.load()
    index = open_for(blip, "photos.lancedb")          # refuses an index made by another model
    add_images(index, blip, ["~/Pictures"])           # only new or changed files go through the model
    hits = search(index, blip, "a dog on a beach", k=10, rerank=True)
"""

from blipkit.index.builder import AddReport, add_images, open_for, prune
from blipkit.index.search import SearchFilters, SearchHit, search, search_vector
from blipkit.index.store import ImageIndex

__all__ = [
    "AddReport", "ImageIndex", "SearchFilters", "SearchHit", "add_images", "open_for", "prune", "search",
    "search_vector",
]
