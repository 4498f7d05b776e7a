"""``scorer report``: one self-contained HTML page (``DIR/index.html`` + ``DIR/img/``) to look at
covers, predictions and models.

The page is assembled from sections (:mod:`.page`) drawn with plain SVG (:mod:`.svg`) and JPEG
files (:mod:`.images`); nothing is fetched when it is opened. :mod:`.gallery` draws a scored
Parquet; the labelled-set sections (sight-check grid, evaluation, embedding map, activation maps)
need training and live in ``scorer/training/insight.py``.
"""

from scorer.insight.page import Page, ReportDir, Section

__all__ = ["Page", "ReportDir", "Section"]
