"""Runners: the same stages driven over a catalog or link file (``files``), a sharded resumable dataset
(``dataset``), Ray Data (``ray_data``) or a playlist service's tracks (``playlist``)."""
