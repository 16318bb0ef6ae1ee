qemu-system-arm \
    -M virt \
    -cpu cortex-a7 \
    -m 256M \
    -kernel /work/barebox/images/barebox-dt-2nd.img \
    -display none \
    -serial mon:stdio \
    -global virtio-mmio.force-legacy=false \
    -gdb tcp:127.0.0.1:1234 \
    -d \
    guest_errors
