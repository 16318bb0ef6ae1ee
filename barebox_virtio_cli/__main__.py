from barebox_virtio_cli.cli import main

main()
