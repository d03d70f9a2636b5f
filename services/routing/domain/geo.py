"""Which grid a point lies in: an STRtree over the grid polygons.

A point exactly on the edge shared by two grids lies in both (``covers``); the grid with the smaller
code wins, so the answer never depends on load order. Points are WGS84 lon/lat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree

from services.routing.domain.refdata import Grid


class GridIndex:
    """Point-in-polygon lookup over many grids (thousands) in microseconds per point."""

    def __init__(self, grids: Sequence[Grid]) -> None:
        self._grids = list(grids)
        self._tree = STRtree([g.geometry for g in self._grids])
        for grid in self._grids:
            shapely.prepare(grid.geometry)

    def __len__(self) -> int:
        return len(self._grids)

    def locate(self, lon: float, lat: float) -> Grid | None:
        """The grid covering the point (lowest code on a shared edge), or None outside every grid."""
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        if len(hits) == 1:
            return self._grids[int(hits[0])]
        return min((self._grids[int(i)] for i in np.asarray(hits)), key=lambda g: g.code)
