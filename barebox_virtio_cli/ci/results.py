"""Pure logic of `bbv test --ci`'s results: one per env of the jobs run, the table, the JSON
(one object per env, `env` named as CI names its JUnit file) and the exit status."""

from __future__ import annotations

import re
from dataclasses import dataclass

from barebox_virtio_cli.testsuite.results import TargetResult

COLUMNS = ("job", "env", "build", "passed", "failed", "skipped", "xfailed", "errors", "time")


@dataclass
class EnvResult:
    job: str  # the matrix entry's defconfig
    env: str
    run: TargetResult | None = None  # None: not run on this host
    not_run: str = ""  # why it was not run

    @property
    def ok(self) -> bool:
        return self.run is not None and not self.run.error and self.run.failed_or_error == 0

    def counts(self) -> dict[str, int]:
        r = self.run
        if r is None:
            return dict.fromkeys(("passed", "failed", "skipped", "xfailed", "errors"), 0)
        return {"passed": r.count("passed"), "failed": r.count("failed"),
                "skipped": r.count("skipped"), "xfailed": r.count("xfailed"),
                "errors": r.count("error")}


_COMPILER = re.compile(r": (fatal )?error: |: Error: |: undefined reference")


def build_failure(errors: list[str], message: str, src: str) -> str:
    """One line for a failed build: the first compiler error (else make's), its path relative
    to the tree, and how make ended; the full output is the result's log."""
    first = next((e for e in errors if _COMPILER.search(e)), errors[0] if errors else "")
    first = first.strip().replace(src.rstrip("/") + "/", "")
    how = message.split(";", 1)[0]
    return f"build failed: {first} ({how})" if first else f"build failed: {how}"


def table_rows(results: list[EnvResult]) -> list[list[str]]:
    def secs(value: float | None) -> str:
        return "-" if not value else f"{value:.1f} s"

    rows = []
    for r in results:
        if r.run is None:
            rows.append([r.job, r.env, "not run", "-", "-", "-", "-", "-", "-"])
            continue
        counts = r.counts()
        cells = [str(counts[k]) for k in ("passed", "failed", "skipped", "xfailed", "errors")]
        if r.run.error and not r.run.tests:
            cells = ["-"] * 5
        built = "failed" if r.run.error.startswith("build failed") else secs(
            r.run.build_seconds)
        rows.append([r.job, r.env, built, *cells, secs(r.run.duration)])
    return rows


def to_json(results: list[EnvResult]) -> list[dict]:
    out = []
    for r in results:
        run = r.run
        out.append({
            "env": r.env, "defconfig": r.job, **r.counts(),
            "duration": round(run.duration, 2) if run else 0.0,
            "build_seconds": (None if run is None or run.build_seconds is None
                              else round(run.build_seconds, 1)),
            "ran": run is not None and not (run.error and not run.tests),
            "tests": [{"name": t.name, "outcome": t.outcome} for t in run.tests] if run else [],
            "error": (f"not run: {r.not_run}" if run is None else run.error or None),
            "log": str(run.log) if run and run.log else None})
    return out


def exit_status(results: list[EnvResult]) -> int:
    """0 only when every env this host can run ran and passed (and there was one)."""
    ran = [r for r in results if r.run is not None]
    return 0 if ran and all(r.ok for r in ran) else 1


def problems(results: list[EnvResult]) -> list[tuple[str, str, str, str]]:
    """(env, what, reason, log) for every env not run, failed build or boot, failed test."""
    rows = []
    for r in results:
        if r.run is None:
            rows.append((r.env, "(not run)", r.not_run, ""))
            continue
        log = str(r.run.log) if r.run.log else ""
        if r.run.error:
            rows.append((r.env, "(no test results)" if not r.run.tests else "(run aborted)",
                         r.run.error, log))
        rows += [(r.env, t.name, t.reason, log) for t in r.run.tests
                 if t.outcome in ("failed", "error")]
    return rows
