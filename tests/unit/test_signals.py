"""util/signals' stop line: `bbv: stopped by SIGTERM` stays bbv's last line, also where a
block says something after its run was stopped (a recording's whereabouts)."""

from __future__ import annotations

import signal

import pytest

from barebox_virtio_cli.util import status
from barebox_virtio_cli.util.signals import announce_stop, stop_line_last

pytestmark = pytest.mark.pure


def test_the_stop_line_said_inside_the_block_comes_after_the_block():
    with status.collected([]) as said, stop_line_last():
        assert announce_stop(signal.SIGTERM) == 143
        status.say("recording in rec; replay it with: bbv replay rec")
    assert said == ["bbv: recording in rec; replay it with: bbv replay rec\n",
                    "bbv: stopped by SIGTERM\n"]


def test_as_a_decorator_nested_and_outside_it_the_line_is_said_at_once():
    @stop_line_last()
    def run() -> int:
        with stop_line_last():
            status_ = announce_stop(signal.SIGHUP)
        status.say("after the inner block")
        return status_

    with status.collected([]) as said:
        assert run() == 129
        announce_stop(signal.SIGINT)
    assert said == ["bbv: after the inner block\n", "bbv: stopped by SIGHUP\n",
                    "bbv: stopped by SIGINT\n"]
