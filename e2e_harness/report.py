"""The compatibility report: which versions were tested, on what, with which result.

Two forms: properties on the JUnit XML (``--junitxml``), and ``report.md`` in the
artifacts directory, appended to ``$GITHUB_STEP_SUMMARY`` when that is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
from xml.etree import ElementTree

from .components import ResolvedSource
from .known_defects import KnownDefect
from .release import Release


@dataclass(frozen=True)
class TestResult:
    nodeid: str
    outcome: str       # passed | failed | skipped | xfailed | error
    duration: float    # seconds, setup + call + teardown
    bundle: Path | None = None
    reason: str = ""


def release_properties(release: Release, sources: Sequence[ResolvedSource], backend: str,
                       platform: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    props = [(f"release.{key}", value) for key, value in release.values.items()]
    props += [(f"platform.{name}", value) for name, value in (platform or {}).items()]
    for source in sources:
        name = source.component.name
        props += [(f"component.{name}.pin", str(source.pin)), (f"component.{name}.source", source.origin),
                  (f"component.{name}.revision", source.revision)]
        if source.detail:
            props.append((f"component.{name}.detail", source.detail))
    if backend:
        props.append(("backend", backend))
    return props


def render_markdown(release: Release, sources: Sequence[ResolvedSource], backend: str,
                    results: Sequence[TestResult], artifacts_dir: Path,
                    known_defects: Sequence[tuple[KnownDefect, int]] = (),
                    platform: Mapping[str, str] | None = None, interrupted: bool = False) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    verdict = "FAILED" if counts.get("failed") or counts.get("error") else (
        "INTERRUPTED (not every scenario ran)" if interrupted else "PASSED" if counts.get("passed") else "NOT TESTED")
    templates, untested = templates_untested(results)
    if untested and verdict != "NOT TESTED":
        verdict += f"; {len(untested)} of {len(templates)} procedure templates not tested on this backend"
    lines = [f"# Release compatibility report: {verdict}", "",
             f"Backend: `{backend or 'none'}`; release file: `{release.path}`", "",
             "## Release", "", "| key | pin | resolved revision | source |", "|---|---|---|---|"]
    by_key = {s.component.pin_key: s for s in sources}
    for key, value in release.values.items():
        source = by_key.get(key)
        revision = f"`{source.revision}`" + (f" ({source.detail})" if source.detail else "") if source else ""
        lines.append(f"| {key} | `{value}` | {revision} | {source.origin if source else ''} |")
    if platform:
        lines += ["", "## Platform", "", "What ran under the release (versions, and images by digest).", "",
                  "| part | version |", "|---|---|"]
        lines += [f"| {name} | `{value}` |" for name, value in platform.items()]
    lines += ["", "## Scenarios", "",
              ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no scenario ran", "",
              "| scenario | result | duration | failure bundle |", "|---|---|---|---|"]
    for r in results:
        bundle = f"[{r.bundle.name}]({_relative(r.bundle, artifacts_dir)})" if r.bundle else ""
        result = r.outcome + (f": {r.reason}" if r.reason else "")
        lines.append(f"| `{r.nodeid}` | {result} | {r.duration:.1f}s | {bundle} |")
    matrix = render_template_matrix({backend or "none": results})
    if matrix:
        lines += ["", "## Procedure templates", "", *matrix]
    if known_defects:
        lines += ["", "## Known defects of this release", "",
                  "From `e2e_harness/known-defects.yaml`; an intermittent defect's step is run again only on its "
                  "exact symptom.", "", "| defect | handling | seen in this run | cause |", "|---|---|---|---|"]
        for defect, seen in known_defects:
            lines.append(f"| `{defect.id}` ({', '.join(defect.components)}) | {defect.handling} | {seen} | "
                         f"{defect.cause} |")
    return "\n".join(lines) + "\n"


# A case of the template matrix (tests/e2e/test_template_matrix.py); other parametrized scenarios are not templates.
TEMPLATE_CASE = re.compile(r"test_template_matrix\.py::(?P<scenario>test_\w+)\[(?P<template>[^\]]+)\]$")


def templates_untested(results: Sequence[TestResult]) -> tuple[list[str], list[str]]:
    """Every template of the matrix among ``results``, and those of them none of whose cases ran
    (all skipped: not hostable on this backend, or no family yet)."""
    by_template = template_cases(results)
    untested = [t for t, rs in by_template.items() if all(r.outcome == "skipped" for r in rs)]
    return sorted(by_template), sorted(untested)


def template_cases(results: Sequence[TestResult]) -> dict[str, list[TestResult]]:
    """The template matrix's cases among ``results``, by template."""
    by_template: dict[str, list[TestResult]] = {}
    for r in results:
        if m := TEMPLATE_CASE.search(r.nodeid):
            by_template.setdefault(m["template"], []).append(r)
    return by_template


def template_cell(results: Sequence[TestResult]) -> str:
    """One template on one backend: failed / not hostable here / passed / known defect, with reasons."""
    failed = [r for r in results if r.outcome in ("failed", "error")]
    if failed:
        return "**failed**: " + ", ".join(f"`{TEMPLATE_CASE.search(r.nodeid)['scenario']}`" for r in failed)
    if all(r.outcome == "skipped" for r in results):
        reason = results[0].reason.replace("|", "\\|")
        return reason if reason.startswith("not hostable") else f"skipped: {reason}"
    parts = []
    passed = sum(r.outcome == "passed" for r in results)
    if passed:
        parts.append(f"passed ({passed} scenario{'s' if passed > 1 else ''})")
    parts += [f"known defect ({r.reason.split(':')[0].removeprefix('known defect ')})"
              for r in results if r.outcome == "xfailed"]
    skipped = [r for r in results if r.outcome == "skipped"]
    parts += [f"skipped: {r.reason}" for r in skipped]
    return "; ".join(parts)


def render_template_matrix(columns: dict[str, Sequence[TestResult]]) -> list[str]:
    """Markdown table: a row per template of the matrix, a column per backend (run)."""
    cells: dict[str, dict[str, list[TestResult]]] = {}
    for backend, results in columns.items():
        for template, cases in template_cases(results).items():
            cells.setdefault(template, {})[backend] = cases
    if not cells:
        return []
    backends = list(columns)
    lines = ["| template | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    for template in sorted(cells):
        row = [template_cell(cells[template][b]) if b in cells[template] else "not run" for b in backends]
        lines.append(f"| `{template}` | " + " | ".join(row) + " |")
    return lines


def write_report(text: str, artifacts_dir: Path, environ=os.environ) -> Path:
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    path = artifacts_dir / "report.md"
    path.write_text(text)
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(text)
    return path


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def add_junit_properties(path: Path, properties: list[tuple[str, str]]) -> None:
    """Add ``properties`` to every testsuite of the JUnit file at ``path``, where pytest's own
    ``record_testsuite_property`` puts them (a ``properties`` element first in the suite).

    Written into the file after pytest has written it: pytest's fixture records nothing in a
    pytest-xdist run (its workers have no JUnit writer; pytest-dev/pytest#7767), and the
    harness writes these from the run's controller."""
    tree = ElementTree.parse(path)
    suites = [tree.getroot()] if tree.getroot().tag == "testsuite" else tree.getroot().findall("testsuite")
    for suite in suites:
        element = suite.find("properties")
        if element is None:
            element = ElementTree.Element("properties")
            suite.insert(0, element)
        for name, value in properties:
            ElementTree.SubElement(element, "property", name=name, value=str(value))
    tree.write(path, encoding="utf-8", xml_declaration=True)

