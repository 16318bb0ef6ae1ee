"""A LAVA device dictionary for the stock `qemu` device type, rendered the way lava-server does
(lava_scheduler_app/environment.py and Device.load_configuration): a device file that extends
qemu.jinja2, rendered in a sandboxed jinja2 environment with trim_blocks and the job's
`context` as variables. Run with the Python that has jinja2 and PyYAML (Debian's python3 with
lava-dispatcher):

    python3 tests/lava_device.py DEVICE_TYPES_DIR JOB.yaml DEVICE.yaml

DEVICE_TYPES_DIR is usr/share/lava-server/device-types from lava-server's .deb
(`apt-get download lava-server && dpkg -x lava-server_*.deb DIR`)."""

from __future__ import annotations

import sys

import yaml
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

DEVICE_FILE = "{% extends 'qemu.jinja2' %}\n"


def render(device_types: str, context: dict) -> str:
    env = SandboxedEnvironment(loader=FileSystemLoader([device_types]), autoescape=False,
                               trim_blocks=True)
    text = env.from_string(DEVICE_FILE).render(**context)
    yaml.safe_load(text)  # lava-server stores only dictionaries that load
    return text


def main(device_types: str, job: str, out: str) -> None:
    with open(job) as fh:
        context = yaml.safe_load(fh).get("context", {})
    with open(out, "w") as fh:
        fh.write(render(device_types, context))


if __name__ == "__main__":
    main(*sys.argv[1:4])
