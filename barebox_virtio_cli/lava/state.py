"""The jobs bbv submitted or waits for, as the server reports them (REST v0.2 job: `state`
Submitted, Scheduling, Scheduled, Running, Canceling, Finished; `health` Unknown, Complete,
Incomplete, Canceled), the live line each change gives, and the outcome of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from barebox_virtio_cli.lava.results import Case, shown

FINISHED = "Finished"
COMPLETE = "Complete"


@dataclass
class Job:
    id: int
    name: str  # the target, or the job's name for job files and `bbv lava wait`
    url: str  # the job's page on the server
    state: str = "Submitted"
    health: str = "Unknown"
    device: str | None = None
    worker: str | None = None
    submit_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    cases: list[Case] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (type, message) of an Incomplete job
    log_tail: list[str] = field(default_factory=list)
    log_lines: int = 0  # lines of its log already read (bbv lava submit -v)
    junit: str | None = None  # where its JUnit was written

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    @property
    def passed(self) -> bool:
        """Completed, and every test case passed."""
        return self.finished and self.health == COMPLETE and all(c.passed for c in self.cases)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end on the worker (None until both are known)."""
        if not (self.start_time and self.end_time):
            return None
        return (_time(self.end_time) - _time(self.start_time)).total_seconds()

    def phase(self) -> str:
        """What a live line says about the job now."""
        if self.state in ("Submitted", "Scheduling"):
            return "queued"
        where = self.worker or "?"
        if self.device:
            where += f" ({self.device})"
        if self.state == "Scheduled":
            return f"scheduled on {where}"
        if self.state == "Running":
            return f"running on {where}"
        if self.state == "Canceling":
            return "canceling"
        return f"finished: {self.health}"

    def update(self, data: dict) -> bool:
        """Take the server's job record; whether the phase changed."""
        before = self.phase()
        self.state = str(data.get("state") or self.state)
        self.health = str(data.get("health") or self.health)
        self.device = data.get("actual_device") or self.device
        for key in ("submit_time", "start_time", "end_time"):
            setattr(self, key, data.get(key) or getattr(self, key))
        return self.phase() != before

    def summary(self) -> str:
        """The live line for a finished job."""
        mine = shown(self.cases)
        good = sum(c.passed for c in mine)
        took = f" in {self.duration:.1f} s" if self.duration is not None else ""
        text = f"{self.health}, {good}/{len(mine)} test cases passed{took}"
        if self.error:
            text += f"; {self.error[0]}: {self.error[1]}"
        return text

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "url": self.url, "state": self.state,
                "health": self.health, "worker": self.worker, "device": self.device,
                "submit_time": self.submit_time, "start_time": self.start_time,
                "end_time": self.end_time, "duration": self.duration,
                "passed": self.passed, "cases": [c.to_json() for c in self.cases],
                "error": dict(zip(("type", "message"), self.error, strict=True))
                if self.error else None,
                "log_tail": self.log_tail, "junit": self.junit}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def exit_status(jobs: list[Job]) -> int:
    """0 only when every job completed and every test case passed."""
    return 0 if jobs and all(job.passed for job in jobs) else 1
