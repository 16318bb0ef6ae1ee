"""util/status's live displays off a terminal and while status lines are collected: the per-name
lines become status lines (markup removed, only on a change), and no display is drawn."""

from __future__ import annotations

import pytest

from barebox_virtio_cli.util import status

pytestmark = pytest.mark.pure


def test_rows_say_each_change_once_without_markup():
    with status.collected([]) as said:
        rows = status.Rows(["vexpress", "malta"], live=True)  # collected: never live
        rows.set("vexpress", "building")
        rows.set("vexpress", "building")
        rows.set("malta", "3/10 tests", say_it=False)
        rows.set("malta", "[red]2 passed, 1 failed[/]")
        rows.close()
    assert not rows.live
    assert said == ["bbv: vexpress: building\n", "bbv: malta: 2 passed, 1 failed\n"]
    assert rows.lines == {"vexpress": "building", "malta": "[red]2 passed, 1 failed[/]"}


def test_no_display_while_collected_and_the_callbacks_still_work():
    asked = []
    with status.collected([]) as said:
        with status.spinning(lambda: asked.append(1) or "x"):
            pass
        with status.transfer("a.tar.xz") as update:
            update(10, 100)
    assert asked == [] and said == []
