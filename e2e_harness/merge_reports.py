"""Merge the JUnit files of sharded runs into one JUnit file and one report.

GitHub Actions runs the k3d matrix in parallel jobs (``pytest --splits N --group i``), each
with its own cluster; its last job calls this with every shard's JUnit file:

    python -m e2e_harness.merge_reports --junit merged.xml --report report.md shard-*/junit-e2e.xml

The report has the totals, the failures, and the templates × backends table (shards of
one backend form one column; the backend is the ``backend`` property each run records).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

from .report import TestResult, render_template_matrix, templates_untested, write_report


class MergeError(RuntimeError):
    pass


def _suites(xml) -> list[TestSuite]:
    return list(xml) if isinstance(xml, JUnitXml) else [xml]


def _backend(suite: TestSuite) -> str:
    for prop in suite.properties():
        if prop.name == "backend":
            return prop.value
    return "unknown backend"


def results_of(path: Path) -> dict[str, list[TestResult]]:
    """Per backend, the results of one JUnit file (pytest's --junitxml)."""
    try:
        xml = JUnitXml.fromfile(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse error is reported with the file's name
        raise MergeError(f"{path}: not a JUnit XML file: {exc}") from None
    out: dict[str, list[TestResult]] = {}
    for suite in _suites(xml):
        backend = _backend(suite)
        for case in suite:
            nodeid = f"{case.classname.replace('.', '/')}.py::{case.name}"
            outcome, reason = "passed", ""
            for result in case.result:
                if isinstance(result, (Failure, Error)):
                    outcome = "failed" if isinstance(result, Failure) else "error"
                    break
                if isinstance(result, Skipped):
                    xfail = (result.type or "") == "pytest.xfail"
                    outcome, reason = ("xfailed" if xfail else "skipped"), (result.message or "")
            out.setdefault(backend, []).append(TestResult(nodeid, outcome, float(case.time or 0), reason=reason))
    return out


def merge(paths: list[Path], junit_out: Path, report_out: Path) -> tuple[int, int]:
    """Write the merged JUnit file and report; returns (cases, failed or errored cases)."""
    if not paths:
        raise MergeError("no JUnit files to merge: did every shard fail before pytest ran?")
    merged = JUnitXml()
    columns: dict[str, list[TestResult]] = {}
    for path in paths:
        for backend, results in results_of(path).items():
            columns.setdefault(backend, []).extend(results)
        for suite in _suites(JUnitXml.fromfile(str(path))):
            merged.add_testsuite(suite)
    junit_out.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(junit_out))
    results = [r for rs in columns.values() for r in rs]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    bad = [r for r in results if r.outcome in ("failed", "error")]
    verdict = "FAILED" if bad else ("PASSED" if counts.get("passed") else "NOT TESTED")
    templates, untested = templates_untested(results)
    if untested and verdict != "NOT TESTED":
        verdict += f"; {len(untested)} of {len(templates)} procedure templates not tested in any run"
    lines = [f"# Release compatibility report (merged from {len(paths)} runs): {verdict}", "",
             ", ".join(f"{n} {o}" for o, n in sorted(counts.items())), ""]
    if bad:
        lines += ["## Failed", ""] + [f"- `{r.nodeid}` ({r.outcome})" for r in bad] + [""]
    matrix = render_template_matrix(columns)
    if matrix:
        lines += ["## Procedure templates", "", *matrix]
    text = "\n".join(lines) + "\n"
    written = write_report(text, report_out.parent)
    if written != report_out:
        written.replace(report_out)
    return len(results), len(bad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, required=True, help="merged JUnit file to write")
    parser.add_argument("--report", type=Path, required=True, help="merged report (markdown) to write")
    parser.add_argument("files", nargs="*", type=Path, help="the shards' JUnit files")
    args = parser.parse_args(argv)
    try:
        cases, bad = merge(args.files, args.junit, args.report)
    except MergeError as exc:
        print(f"merge_reports: {exc}", file=sys.stderr)
        return 2
    print(f"merged {len(args.files)} JUnit files: {cases} cases, {bad} failed; report {args.report}"
          + (" (appended to $GITHUB_STEP_SUMMARY)" if os.environ.get("GITHUB_STEP_SUMMARY") else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
