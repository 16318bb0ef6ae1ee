"""The build's live line: steps against the previous build's total for the same directory, and
the time left, estimated from that build's record. Pure logic; make.py draws it."""

from __future__ import annotations

from dataclasses import dataclass

# A pace measured over the first few steps says little; until then trust the last build.
_MIN_FRACTION = 0.05


@dataclass(frozen=True)
class Previous:
    """What the previous build of this kind in this directory took."""

    steps: int
    seconds: float


def kind(fresh_config: bool, scope: str) -> str:
    """Builds are compared with builds of the same kind: a first build after (re)configuring
    recompiles everything, an incremental one only what changed; a target-only build makes
    fewer images than --all-images."""
    return f"{'full' if fresh_config else 'incremental'}-{scope}"


def previous(history: dict, build_kind: str) -> Previous | None:
    """From the previous build record's progress history."""
    entry = history.get(build_kind)
    if not isinstance(entry, dict):
        return None
    steps, seconds = entry.get("steps"), entry.get("seconds")
    if not isinstance(steps, int) or not isinstance(seconds, (int, float)) or steps <= 0:
        return None
    return Previous(steps, float(seconds))


def remember(history: dict, build_kind: str, steps: int, seconds: float) -> dict:
    """The progress history with this build's figures for its kind."""
    return {**history, build_kind: {"steps": steps, "seconds": round(seconds, 1)}}


def time_left(steps: int, elapsed: float, prev: Previous | None) -> float | None:
    """Seconds left: the previous build's time for the steps not done yet, scaled by how much
    faster or slower this build runs so far. None when there is nothing to go on."""
    if prev is None:
        return None
    fraction = min(steps / prev.steps, 1.0)
    if steps >= prev.steps:
        return 0.0
    if fraction < _MIN_FRACTION:
        return max(prev.seconds - elapsed, 0.0)
    pace = elapsed / (prev.seconds * fraction)  # >1: slower than last time
    pace = min(max(pace, 0.25), 4.0)
    return prev.seconds * (1.0 - fraction) * pace


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe(steps: int, elapsed: float, prev: Previous | None) -> str:
    """"123/~1450 steps, ~0:40 left" (or just "123 steps" for a directory's first build)."""
    if prev is None:
        return f"{steps} steps"
    if steps > prev.steps:
        return f"{steps} steps (last time {prev.steps}), almost done"
    left = time_left(steps, elapsed, prev)
    assert left is not None
    return f"{steps}/~{prev.steps} steps, ~{clock(left)} left"
