"""Mutation testing of the modules whose mistakes a user would meet: which mutants the fast tests kill.

mutmut 3 (the ``mutation`` extra: ``pip install -e '.[mutation]'``) mutates the modules below in a fresh
clone of this repository's last commit (never in the working tree: tests may be running there), runs,
for each mutant, only the selected tests that call the mutated function, in a process forked from one
that has already imported everything, and counts what the tests kill. One worker, under ``nice``.

    python -m benchmarks.mutation                    # all five modules (hours on two shared cores)
    python -m benchmarks.mutation --module filters   # one of them; its row of the results is replaced
    python -m benchmarks.mutation --minutes 5 --commit b31e785 --results /tmp/before   # 5 minutes a module
    python -m benchmarks.mutation --minutes 4 --rerun-survivors /tmp/before/mutation.json   # after new tests

With ``--minutes``, a module's run stops after that long and the count is of the mutants that ran (mutmut runs
those with the fastest tests first: not a random sample). ``--rerun-survivors`` runs again every mutant of each
function that had a survivor in an earlier result and keeps that result's verdicts for the other functions.

A mutant that no selected test kills, or that no selected test even reaches, counts as survived. The
results (benchmarks/results/mutation.json and .md) give, per module, the mutants, killed, survived,
timeouts and the survival rate, with the tool's version, the date and the commit; the JSON lists the
survivors by name (``mutmut show NAME`` in the clone prints one's diff).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from scorer.files import atomic_write

from .common import REPO, SHARED

CATALOG_TESTS = ["tests/test_bad_rows.py", "tests/test_encoding.py",
                 "tests/test_properties.py::test_generated_csv_catalogs",
                 "tests/test_properties.py::test_generated_jsonl_catalogs",
                 "tests/test_properties.py::test_random_bytes_are_a_usage_error_or_rows",
                 "tests/test_shards.py::test_catalog_streams_in_exact_chunks"]
#: the modules mutated, by the name ``--module`` takes, and the fast, in-process tests that exercise each (tests that
#: start a subprocess would run the unmutated code). Per mutant, mutmut runs those of them that reached the mutated
#: function in its first, recorded run. Files that do not exist (yet) are left out.
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "filters": (["scorer/filters.py"], ["tests/test_filters.py", "tests/test_catalog.py::test_keep_top_genre",
                                        "tests/test_catalog.py::test_keep_takes_the_names_people_type",
                                        "tests/test_catalog.py::test_keep_with_min_prob",
                                        "tests/test_catalog.py::test_invalid_arguments_fail_before_any_work"]),
    "catalog": (["scorer/sources/catalog.py"], ["tests/test_rows.py", *CATALOG_TESTS]),
    "rows": (["scorer/sources/rows.py"], ["tests/test_rows.py", *CATALOG_TESTS]),
    "scoring": (["scorer/scoring.py"], ["tests/test_scoring.py", "tests/test_catalog.py", "tests/test_bad_rows.py"]),
    "calibration": (["scorer/heads/calibration.py", "scorer/training/calibration.py"], ["tests/test_calibration.py"]),
}
#: fails the clean run unless the tests import the clone's mutated copy of the package
ORIGIN_TEST = '''import os, scorer

def test_the_mutated_copy_is_imported():
    assert os.path.dirname(os.path.dirname(scorer.__file__)) == os.getcwd(), scorer.__file__
'''
WORKDIR = REPO / "benchmarks" / ".envs" / "mutation"
RESULTS = REPO / "benchmarks" / "results"
#: mutmut's exit codes, as its ``stats.status_by_exit_code`` reads them
KILLED, SURVIVED, TIMEOUT = {1, 3}, {0, 5, 33}, {24, -24, 152, 255, 36}


def mutmut_version() -> str:
    try:
        from importlib.metadata import version

        return version("mutmut")
    except Exception:  # noqa: BLE001 - any failure means: not installed
        raise SystemExit("mutation: mutmut is not installed; pip install -e '.[mutation]'") from None


def prepare(workdir: Path, module: str, commit: str = "HEAD") -> list[str]:
    """A fresh clone (at ``commit``) at ``workdir`` configured for mutmut to mutate ``module``; returns the tests
    selected."""
    if workdir.exists():
        shutil.rmtree(workdir)
    subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
    subprocess.run(["git", "-C", str(workdir), "checkout", "-q", commit], check=True)
    files, wanted = MODULES[module]
    tests = [t for t in wanted if (workdir / t.split("::")[0]).is_file()] + ["tests/test_zz_mutation_origin.py"]
    (workdir / "tests" / "test_zz_mutation_origin.py").write_text(ORIGIN_TEST)
    config = (f"\n[tool.mutmut]\nsource_paths = [\"scorer\"]\nonly_mutate = {json.dumps(files)}\n"
              "also_copy = [\"models\", \"jobs\"]\npytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\"]\n"
              f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")
    with open(workdir / "pyproject.toml", "a") as f:
        f.write(config)
    return tests


def run_mutmut(workdir: Path, log: Path, names: list[str], minutes: float | None = None) -> bool:
    """``mutmut run`` (of the mutants matching ``names``, or all) with one worker, niced, with the clone's package
    first (no PYTHONPATH from outside). Stopped after ``minutes`` (mutmut keeps each verdict as it comes): False
    then."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SCORER_SHARED_DATA"] = str(SHARED)  # the clone's ../shared/data is not there: tests needing it would skip
    mutmut = Path(sys.executable).parent / "mutmut"
    with open(log, "w") as out:
        proc = subprocess.Popen(["nice", "-n", "15", str(mutmut), "run", "--max-children", "1", *names], cwd=workdir,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=None if minutes is None else minutes * 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # mutmut and the worker it forked
            proc.wait()
            return False
    if code != 0:
        raise SystemExit(f"mutation: mutmut run failed ({code}); see {log}")
    return True


def function_of(mutant: str) -> str:
    """``scorer.filters.x_split_keep__mutmut_12`` -> ``scorer.filters.x_split_keep``."""
    return mutant.rsplit("__mutmut_", 1)[0]


def count(workdir: Path, module: str, before: dict | None = None) -> dict:
    """The module's mutants, killed, survived (not killed by any selected test), timeout, survival rate and the
    survivors' names, from mutmut's ``.meta`` files. With ``before`` (an earlier result of which only the functions
    with survivors were run again), that result with those functions' new verdicts in place of the old."""
    codes: dict[str, int | None] = {}
    for f in MODULES[module][0]:
        codes.update(json.loads((workdir / "mutants" / f"{f}.meta").read_text())["exit_code_by_key"])
    if before is None:
        return summarise(codes)
    rerun = {function_of(name) for name in before["survivors"]}
    kept = {fn: tally for fn, tally in before["by_function"].items() if fn not in rerun}
    again = summarise({k: c for k, c in codes.items() if function_of(k) in rerun})
    by_function = {**kept, **again["by_function"]}
    out = {k: sum(t[k] for t in by_function.values()) for k in ("mutants", "killed", "survived", "timeout", "not_run")}
    checked = out["killed"] + out["survived"] + out["timeout"]
    survivors = sorted({s for s in before["survivors"] if function_of(s) not in rerun} | set(again["survivors"]))
    return {**out, "other": out["mutants"] - checked - out["not_run"],
            "survival_rate": round(out["survived"] / checked, 4) if checked else None, "survivors": survivors,
            "by_function": by_function, "rerun_of": before["commit"]}


def summarise(codes: dict[str, int | None]) -> dict:
    """Counts of one module's mutants by their exit codes (``None``: not run; other codes: ``other``), in all and
    per function."""
    def tally(values: list[int | None]) -> dict[str, int]:
        return {"mutants": len(values), "killed": sum(c in KILLED for c in values),
                "survived": sum(c in SURVIVED for c in values), "timeout": sum(c in TIMEOUT for c in values),
                "not_run": sum(c is None for c in values)}

    whole = tally(list(codes.values()))
    checked = whole["killed"] + whole["survived"] + whole["timeout"]
    functions = sorted({function_of(k) for k in codes})
    return {**whole, "other": whole["mutants"] - checked - whole["not_run"],
            "survival_rate": round(whole["survived"] / checked, 4) if checked else None,
            "survivors": sorted(k for k, c in codes.items() if c in SURVIVED),
            "by_function": {fn: tally([c for k, c in codes.items() if function_of(k) == fn]) for fn in functions}}


def write(modules: dict[str, dict], json_path: Path, md_path: Path) -> dict:
    """The JSON (merged into an earlier one: a ``--module`` run replaces its own row) and the Markdown table."""
    old = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged = {**old.get("modules", {}), **modules}
    merged = {m: merged[m] for m in MODULES if m in merged}
    atomic_write(json_path, (json.dumps({"modules": merged}, indent=1) + "\n").encode())
    lines = ["# Mutation testing", "",
             "One worker. A mutant that no selected test kills counts as survived; the survival rate is of the "
             "mutants run (not run: a run stopped by --minutes). A --rerun-survivors run reruns the functions that "
             "had survivors and keeps the earlier run's verdicts for the others (`rerun_of` in the JSON).", "",
             "| module | mutants | killed | survived | timeout | not run | survival rate | tool | commit | date "
             "| minutes |", "|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|"]
    for name, m in merged.items():
        rate = "-" if m["survival_rate"] is None else f"{m['survival_rate']:.1%}"
        lines.append(f"| {name} | {m['mutants']} | {m['killed']} | {m['survived']} | {m['timeout']} | "
                     f"{m['not_run']} | {rate} | {m['tool']} | {m['commit']} | {m['date']} | {m['minutes']} |")
    lines += ["", "Tests selected per module:", ""]
    lines += [f"- {name}: " + ", ".join(f"`{t}`" for t in m["tests"]) for name, m in merged.items()]
    atomic_write(md_path, ("\n".join(lines) + "\n").encode())
    return merged


def measure(module: str, workdir: Path, tests: list[str], before: dict | None = None,
            minutes: float | None = None) -> dict:
    """Mutate ``module`` in its clone, run its tests against each mutant (or only against ``before``'s survivors),
    count."""
    tool = f"mutmut {mutmut_version()}"
    commit = subprocess.run(["git", "-C", str(workdir), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    start = datetime.now(timezone.utc)
    print(f"mutation: {module} at {commit} in {workdir} (log: {workdir / 'mutmut.log'})", file=sys.stderr, flush=True)
    whole = True
    if before is None or before["survivors"]:  # a rerun: every mutant of each function that had a survivor
        names = sorted({f"{function_of(s)}__mutmut_*" for s in before["survivors"]}) if before else []
        whole = run_mutmut(workdir, workdir / "mutmut.log", names, minutes)
    minutes = round((datetime.now(timezone.utc) - start).total_seconds() / 60, 1)
    return {"tool": tool, "commit": commit, "date": start.strftime("%Y-%m-%d %H:%M UTC"), "minutes": minutes,
            "tests": tests[:-1], **count(workdir, module, before), "whole": whole}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--module", choices=list(MODULES), action="append", help="only this module (repeatable)")
    ap.add_argument("--workdir", type=Path, default=WORKDIR, help="where the clones are made (emptied first)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--minutes", type=float, help="stop each module's run after this long (a partial count: mutmut "
                    "runs the mutants with the fastest tests first, so the rest are not a random sample)")
    ap.add_argument("--commit", default="HEAD", help="the commit measured (default: the last one)")
    ap.add_argument("--rerun-survivors", type=Path, metavar="JSON",
                    help="an earlier mutation.json: run again only the mutants of functions that had a survivor there, "
                         "and keep its verdicts for the other functions (valid when tests were only added)")
    args = ap.parse_args(argv)
    before = json.loads(args.rerun_survivors.read_text())["modules"] if args.rerun_survivors else None
    mutmut_version()
    args.results.mkdir(parents=True, exist_ok=True)
    modules = args.module or list(MODULES)
    # every clone first: all modules are measured at the same commit, whatever is committed during the run
    tests = {module: prepare(args.workdir / module, module, args.commit) for module in modules}
    for module in modules:
        result = measure(module, args.workdir / module, tests[module], before and before[module], args.minutes)
        write({module: result}, args.results / "mutation.json", args.results / "mutation.md")
        print(json.dumps({module: {k: v for k, v in result.items() if k not in ("survivors", "tests")}}), flush=True)


if __name__ == "__main__":
    main()
