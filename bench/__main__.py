"""Run the benchmarks: ``python -m bench [ingest] [review] [audit] [options]`` (all by default).

A full run recreates the benchmark database (``BENCH_DATABASE_URL``) first, so that every run
starts from the same empty tables; ``--keep-database`` goes on with what is there.
"""

import argparse

from bench import audit_bench, ingest_bench, review_bench
from bench.common import django_setup

# In this order: the review benchmark measures at 10,000 rows first, so it runs on the empty
# database; ingestion then runs against a table of a million rows.
BENCHMARKS = {"review": review_bench, "ingest": ingest_bench, "audit": audit_bench}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="benchmark", help=", ".join(BENCHMARKS))
    parser.add_argument("--keep-database", action="store_true")
    for module in BENCHMARKS.values():
        module.add_arguments(parser)
    args = parser.parse_args()
    names = args.names or list(BENCHMARKS)
    if unknown := set(names) - set(BENCHMARKS):
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    review_bench.prepare_environment()
    django_setup(recreate=not args.keep_database)
    for name in names:
        BENCHMARKS[name].run(args)


if __name__ == "__main__":
    main()
