"""Score a catalog on a Ray cluster. Submit it with the Ray Jobs CLI, e.g.::

    ray job submit --address http://HEAD:8265 --runtime-env-json '{"pip": ["scorer[ray]"]}' \\
        -- python jobs/ray_job.py /shared/catalog.parquet s3://bucket/scores --keep rock,pop

It runs ``scorer catalog CATALOG --out OUT --engine ray`` on the cluster the job runs in
(``RAY_ADDRESS`` is set by ``ray job submit``; without it a local Ray starts); any other
``scorer catalog`` option passes through, and its one JSON summary line is printed at the end.
The catalog is a path every node can read (a shared filesystem): its header is checked on the
driver before the cluster does any work. The output may be any pyarrow filesystem URI.
"""

from __future__ import annotations

import sys

from scorer.cli import app

USAGE = "usage: python jobs/ray_job.py CATALOG OUT [scorer catalog options]"


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        app(["catalog", "--help"])
    if len(argv) < 2 or argv[1].startswith("-"):
        print(f"{USAGE} (CATALOG and OUT come first)", file=sys.stderr)
        raise SystemExit(2)
    catalog, out, *rest = argv
    app(["catalog", catalog, "--out", out, "--engine", "ray", "--json", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
