"""The build's live line, pure logic: the estimate from the previous build of the same
directory and kind, the spinner that moves, and the kconfig report lines."""

from __future__ import annotations

import pytest

from barebox_virtio_cli.build import kbuild, progress
from barebox_virtio_cli.build.make import Progress
from barebox_virtio_cli.util.status import Spinning

pytestmark = pytest.mark.pure
PREV = progress.Previous(steps=1000, seconds=100.0)


def test_no_previous_build_shows_steps_only():
    assert progress.describe(12, 3.0, None) == "12 steps"
    assert progress.time_left(12, 3.0, None) is None


def test_same_pace_as_last_time_leaves_the_rest_of_last_times_duration():
    assert progress.time_left(500, 50.0, PREV) == 50.0
    assert progress.describe(500, 50.0, PREV) == "500/~1000 steps, ~0:50 left"


def test_twice_as_slow_doubles_the_time_left():
    assert progress.time_left(250, 50.0, PREV) == 150.0  # 3/4 of 100 s, at half the pace


def test_first_steps_trust_the_previous_duration():
    assert progress.time_left(10, 4.0, PREV) == 96.0  # 1 % done: pace is not known yet
    assert progress.time_left(0, 120.0, PREV) == 0.0  # never negative


def test_pace_is_clamped():
    assert progress.time_left(100, 1000.0, PREV) == 90.0 * 4  # at most 4x slower
    assert progress.time_left(500, 0.1, PREV) == 50.0 / 4


def test_more_steps_than_last_time():
    assert progress.time_left(1200, 90.0, PREV) == 0.0
    assert progress.describe(1200, 90.0, PREV) == "1200 steps (last time 1000), almost done"


def test_figures_are_remembered_per_kind_and_read_back():
    before = {"full-all": {"steps": 3000, "seconds": 200.0}}
    history = progress.remember(before, "incremental-target", 40, 12.34)
    assert history == {"full-all": {"steps": 3000, "seconds": 200.0},
                       "incremental-target": {"steps": 40, "seconds": 12.3}}
    assert before == {"full-all": {"steps": 3000, "seconds": 200.0}}  # unchanged
    assert progress.previous(history, "incremental-target") == progress.Previous(40, 12.3)
    assert progress.previous(history, "full-target") is None
    assert progress.previous({}, "full-all") is None
    assert progress.previous({"full-all": {"steps": 0, "seconds": 1}}, "full-all") is None
    assert progress.previous({"full-all": "junk"}, "full-all") is None


def test_kind_separates_fresh_from_incremental_and_target_from_all():
    assert progress.kind(True, "all") == "full-all"
    assert progress.kind(False, "target") == "incremental-target"


def test_the_spinner_is_one_object_and_moves():
    shown = Progress("building x", PREV)
    line = Spinning(shown.text)
    first = line.at(200)
    shown.feed("  CC      common/version.o")
    second = line.at(200)
    assert first is second
    frames = {str(second.render(t)) for t in (0.0, 0.09, 0.18, 0.27)}
    assert len(frames) == 4
    assert "1/~1000 steps" in str(second.text) and "common/version.o" in str(second.text)
    assert len(str(line.at(40).text)) == 38  # cut to the terminal, never wrapped


def test_kconfig_report_does_not_repeat_single_options():
    lines = kbuild.config_report(["common/x.config", "CONFIG_A=y"], ["CONFIG_A=y", "CONFIG_B=n"],
                                 ["CONFIG_C=y (got n)"])
    assert lines == ["kconfig: merged common/x.config",
                     "kconfig: set CONFIG_A=y, CONFIG_B=n",
                     "kconfig: NOT set (missing dependency or unknown symbol): CONFIG_C=y (got n)"]
    assert kbuild.config_report(["CONFIG_A=y"], ["CONFIG_A=y"], []) == ["kconfig: set CONFIG_A=y"]


def test_unknown_goal_recognises_makes_and_barebox_messages():
    goal = "images/barebox-dt-2nd.img"
    assert kbuild.unknown_goal(["FILE_barebox-dt-2nd.img empty!"], goal)
    assert kbuild.unknown_goal(["make: *** No rule to make target 'images/barebox-dt-2nd.img'. "
                                "Stop."], goal)
    assert not kbuild.unknown_goal(["common/a.c:1: error: x"], goal)


def test_image_goals_read_the_trees_makefiles(tmp_path):
    (tmp_path / "arch" / "x86").mkdir(parents=True)
    (tmp_path / "arch" / "x86" / "Makefile").write_text("barebox.efi: $(KBUILD_BINARY) FORCE\n")
    (tmp_path / "Makefile").write_text("images: FORCE\n")
    assert kbuild.image_goals(tmp_path, "x86", "barebox.efi") == (["barebox.efi"], "")
    goals, why = kbuild.image_goals(tmp_path, "x86", "barebox-dt-2nd.img")
    assert goals == [] and "no images/% goal" in why
    (tmp_path / "Makefile").write_text("images/%: $(BAREBOX_PROPER) FORCE\n")
    assert kbuild.image_goals(tmp_path, "x86", "barebox-dt-2nd.img") == \
        (["images/barebox-dt-2nd.img"], "")
