"""bbv: build, boot and talk to barebox under QEMU with VirtIO devices."""

__version__ = "0.1.0"
