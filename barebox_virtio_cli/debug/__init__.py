"""Debugging barebox under QEMU with gdb: endpoints, symbols and where barebox runs."""
