from barebox_virtio_cli.entry import main

main()
