qemu-system-riscv64 \
    -M virt \
    -cpu rv64 \
    -m 256M \
    -kernel /work/barebox/images/barebox-dt-2nd.img \
    -display none \
    -serial mon:stdio \
    -global virtio-mmio.force-legacy=false \
    -gdb unix:/run/user/1000/bbv/g,,db.sock,server=on,wait=off \
    -S \
    -d \
    guest_errors
