"""Score a catalog on a Ray cluster. Submit it with the Ray Jobs CLI, e.g.::

    ray job submit --address http://HEAD:8265 --runtime-env-json '{"pip": ["scorer[ray]"]}' \\
        -- python jobs/ray_job.py /shared/catalog.parquet s3://bucket/scores --keep rock,pop

It runs ``scorer catalog CATALOG --out OUT --engine ray`` on the cluster the job runs in
(``RAY_ADDRESS`` is set by ``ray job submit``); any other ``scorer catalog`` option passes through.
The catalog is a path every node can read (a shared filesystem): its header is checked on the
driver before the cluster does any work. The output may be any pyarrow filesystem URI.
"""

from __future__ import annotations

import sys

from scorer.cli import app

if __name__ == "__main__":
    catalog, out, *rest = sys.argv[1:] or ["--help"]
    app(["catalog", catalog, "--out", out, "--engine", "ray", "--json", *rest])
