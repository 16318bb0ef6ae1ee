@ A tiny stand-in for barebox, so that the scripted-boot tests run against real QEMU without a
@ barebox image. Not barebox code. ARMv7 (QEMU -M virt), PL011 UART at 0x09000000, linked at
@ 0x40010000 where QEMU loads a raw -kernel image. It prints a barebox-like banner and autoboot
@ line, waits for a key, then reads lines at a barebox-like prompt, splits them at ';' and runs:
@   echo ARGS (with $? replaced by the last status), true, false, ls (fake /dev), hang (forever),
@   dmesg (two log lines in `dmesg -t` form: boot time after a busy loop, printed before the
@   autoboot line, and when the key came; from the generic timer, 62.5 MHz in QEMU),
@   reset and poweroff (PSCI SYSTEM_RESET / SYSTEM_OFF through QEMU's hvc conduit),
@   rng (16 bytes from the first virtio-rng device, in hex) and blk (the first 16 bytes of sector 0
@   of the first virtio-blk device, in hex), read as barebox does through modern virtio-mmio
@   (virt's 32 transports from 0x0a000000, 0x200 apart), one polled request on queue 0;
@ anything else prints barebox's "Unknown command" and sets status 1.

        .syntax unified
        .arm
        .arch   armv7-a
        .arch_extension virt
        .equ    UART, 0x09000000
        .equ    UART_FR, 0x18
        .equ    FR_RXFE, 0x10
        .equ    FR_TXFF, 0x20
        .equ    LINE_MAX, 255
        .equ    BUSY, 2000000           @ loop turns before the boot message: guest time to count
        .equ    MMIO, 0x0a000000        @ virtio-mmio transports (virtio spec 4.2.2)
        .equ    MMIO_COUNT, 32
        .equ    MMIO_MAGIC, 0x74726976  @ "virt"
        .equ    VIO_VERSION, 0x004
        .equ    VIO_DEVICE_ID, 0x008
        .equ    VIO_DEV_FEATURES, 0x010
        .equ    VIO_DEV_FEATURES_SEL, 0x014
        .equ    VIO_DRV_FEATURES, 0x020
        .equ    VIO_DRV_FEATURES_SEL, 0x024
        .equ    VIO_QUEUE_SEL, 0x030
        .equ    VIO_QUEUE_NUM_MAX, 0x034
        .equ    VIO_QUEUE_NUM, 0x038
        .equ    VIO_QUEUE_READY, 0x044
        .equ    VIO_QUEUE_NOTIFY, 0x050
        .equ    VIO_INT_STATUS, 0x060
        .equ    VIO_INT_ACK, 0x064
        .equ    VIO_STATUS, 0x070
        .equ    VIO_QUEUE_DESC, 0x080
        .equ    VIO_QUEUE_DRIVER, 0x090
        .equ    VIO_QUEUE_DEVICE, 0x0a0
        .equ    QUEUE_SIZE, 4
        .equ    VQ_AVAIL, 0x100         @ the queue's parts and buffers in vq (zeroed each time)
        .equ    VQ_USED, 0x200
        .equ    VQ_HEADER, 0x300        @ virtio-blk request: type 0 (IN), sector 0
        .equ    VQ_STATUS, 0x310
        .equ    VQ_DATA, 0x400
        .equ    VQ_BYTES, 0x600
        .equ    POLL, 0x08000000        @ turns waiting for the device before giving up

        .macro  command word, label
        mov     r0, r5
        ldr     r1, =\word
        bl      prefix
        cmp     r0, #0
        bne     \label
        .endm

        .text
        .global _start
_start:
        ldr     sp, =stack_top
        ldr     r4, =UART               @ r4: UART base, r6: last status digit
        mov     r6, #'0'
        ldr     r0, =BUSY
1:      subs    r0, r0, #1
        bne     1b
        mrrc    p15, 1, r0, r1, c14     @ CNTVCT: guest time, counted in instructions
        ldr     r1, =t_booted           @ under -icount
        str     r0, [r1]
        ldr     r0, =s_banner
        bl      puts
        ldr     r0, =s_booted
        bl      puts
        ldr     r0, =s_hit
        bl      puts
        bl      getc                    @ any key stops "autoboot"
        mrrc    p15, 1, r0, r1, c14
        ldr     r1, =t_stopped
        str     r0, [r1]
        ldr     r0, =s_crlf
        bl      puts
        ldr     r0, =s_stopped
        bl      puts
        ldr     r0, =s_crlf
        bl      puts

prompt: ldr     r0, =s_prompt
        bl      puts
        ldr     r7, =line               @ r7: line buffer, r8: length
        mov     r8, #0
read:   bl      getc
        cmp     r0, #'\r'
        cmpne   r0, #'\n'
        beq     eol
        cmp     r8, #LINE_MAX
        bhs     read
        strb    r0, [r7, r8]
        add     r8, r8, #1
        bl      putc                    @ echo, as barebox does
        b       read
eol:    mov     r0, #0
        strb    r0, [r7, r8]
        ldr     r0, =s_crlf
        bl      puts
        mov     r8, r7                  @ r8: start of the current ';'-separated part
part:   mov     r9, r8
1:      ldrb    r0, [r9]
        cmp     r0, #';'
        cmpne   r0, #0
        addne   r9, r9, #1
        bne     1b
        mov     r10, r0                 @ r10: what ended the part
        mov     r0, #0
        strb    r0, [r9]
        mov     r0, r8
        bl      execute
        cmp     r10, #0
        beq     prompt
        add     r8, r9, #1
        b       part

@ execute(r0 = command text)
execute:
        push    {r5, lr}
        mov     r5, r0
1:      ldrb    r0, [r5]
        cmp     r0, #' '
        addeq   r5, r5, #1
        beq     1b
        cmp     r0, #0
        popeq   {r5, pc}
        command s_echo, do_echo
        command s_true, do_true
        command s_false, do_false
        command s_ls, do_ls
        command s_hang, do_hang
        command s_dmesg, do_dmesg
        command s_reset, do_reset
        command s_poweroff, do_poweroff
        command s_rng, do_rng
        command s_blk, do_blk
        ldr     r0, =s_unknown1
        bl      puts
        mov     r0, r5
        bl      puts
        ldr     r0, =s_unknown2
        bl      puts
do_false:
        mov     r6, #'1'
        pop     {r5, pc}
do_echo:
        bl      puts
        ldr     r0, =s_crlf
        bl      puts
do_true:
        mov     r6, #'0'
        pop     {r5, pc}
do_ls:  ldr     r0, =s_devs
        b       do_echo
do_hang:
        b       do_hang
do_reset:
        ldr     r0, =0x84000009         @ PSCI SYSTEM_RESET
        hvc     #0
do_poweroff:
        ldr     r0, =0x84000008         @ PSCI SYSTEM_OFF
        hvc     #0
        b       do_poweroff
do_dmesg:
        ldr     r0, =t_booted
        ldr     r1, =s_booted
        bl      logline
        ldr     r0, =t_stopped
        ldr     r1, =s_stopped
        bl      logline
        b       do_true

do_rng: mov     r0, #4                  @ entropy device
        bl      vio_find
        movs    r5, r0                  @ r5: the transport
        ldreq   r0, =s_no_rng
        beq     vio_fail
        bl      vio_start
        cmp     r0, #0
        ldrne   r0, =s_rng_setup
        bne     vio_fail
        mov     r0, #0
        ldr     r1, =vq + VQ_DATA
        mov     r2, #16
        mov     r3, #2                  @ device-writable
        bl      vio_desc
        mov     r0, r5
        bl      vio_run
        cmp     r0, #16
        ldrne   r0, =s_rng_short
        bne     vio_fail
        b       vio_hex
do_blk: mov     r0, #2                  @ block device
        bl      vio_find
        movs    r5, r0
        ldreq   r0, =s_no_blk
        beq     vio_fail
        bl      vio_start
        cmp     r0, #0
        ldrne   r0, =s_blk_setup
        bne     vio_fail
        ldr     r1, =vq + VQ_STATUS
        mov     r0, #0xff
        strb    r0, [r1]
        mov     r0, #0
        ldr     r1, =vq + VQ_HEADER
        mov     r2, #16
        ldr     r3, =0x10001            @ next 1, NEXT
        bl      vio_desc
        mov     r0, #1
        ldr     r1, =vq + VQ_DATA
        mov     r2, #512
        ldr     r3, =0x20003            @ next 2, NEXT | WRITE
        bl      vio_desc
        mov     r0, #2
        ldr     r1, =vq + VQ_STATUS
        mov     r2, #1
        mov     r3, #2                  @ WRITE
        bl      vio_desc
        mov     r0, r5
        bl      vio_run
        ldr     r1, =vq + VQ_STATUS
        ldrb    r1, [r1]
        cmp     r0, #0
        cmpgt   r1, #0
        ldrne   r0, =s_blk_failed
        bne     vio_fail
vio_hex:
        ldr     r5, =vq + VQ_DATA       @ the first 16 bytes read, in hex
1:      ldrb    r0, [r5]
        lsr     r0, r0, #4
        bl      hexdigit
        ldrb    r0, [r5], #1
        and     r0, r0, #15
        bl      hexdigit
        ldr     r0, =vq + VQ_DATA + 16
        cmp     r5, r0
        bne     1b
        ldr     r0, =s_crlf
        bl      puts
        b       do_true
vio_fail:
        bl      puts
        ldr     r0, =s_crlf
        bl      puts
        b       do_false

hexdigit:
        cmp     r0, #10
        addlo   r0, r0, #'0'
        addhs   r0, r0, #'a' - 10
        b       putc

@ vio_find(r0 = virtio device ID): r0 = the lowest transport with that device, else 0
vio_find:
        ldr     r1, =MMIO
        mov     r2, #MMIO_COUNT
1:      ldr     r3, [r1]
        ldr     r12, =MMIO_MAGIC
        cmp     r3, r12
        bne     2f
        ldr     r3, [r1, #VIO_DEVICE_ID]
        cmp     r3, r0
        moveq   r0, r1
        bxeq    lr
2:      add     r1, r1, #0x200
        subs    r2, r2, #1
        bne     1b
        mov     r0, #0
        bx      lr

@ vio_start(r0 = transport): reset, VERSION_1 only, queue 0 of QUEUE_SIZE in vq, DRIVER_OK;
@ r0 = 0, else not a modern device or refused
vio_start:
        ldr     r1, =vq
        mov     r2, #0
        mov     r3, #VQ_BYTES
1:      subs    r3, r3, #4
        str     r2, [r1, r3]
        bne     1b
        str     r2, [r0, #VIO_STATUS]   @ reset
        ldr     r3, [r0, #VIO_VERSION]
        cmp     r3, #2
        bne     9f
        mov     r3, #3                  @ ACKNOWLEDGE | DRIVER
        str     r3, [r0, #VIO_STATUS]
        mov     r3, #1
        str     r3, [r0, #VIO_DEV_FEATURES_SEL]
        ldr     r3, [r0, #VIO_DEV_FEATURES]
        tst     r3, #1                  @ VIRTIO_F_VERSION_1 (bit 32)
        beq     9f
        mov     r3, #1
        str     r3, [r0, #VIO_DRV_FEATURES_SEL]
        str     r3, [r0, #VIO_DRV_FEATURES]
        str     r2, [r0, #VIO_DRV_FEATURES_SEL]
        str     r2, [r0, #VIO_DRV_FEATURES]
        mov     r3, #11                 @ | FEATURES_OK
        str     r3, [r0, #VIO_STATUS]
        ldr     r3, [r0, #VIO_STATUS]
        tst     r3, #8
        beq     9f
        str     r2, [r0, #VIO_QUEUE_SEL]
        ldr     r3, [r0, #VIO_QUEUE_NUM_MAX]
        cmp     r3, #QUEUE_SIZE
        blo     9f
        mov     r3, #QUEUE_SIZE
        str     r3, [r0, #VIO_QUEUE_NUM]
        str     r1, [r0, #VIO_QUEUE_DESC]
        str     r2, [r0, #VIO_QUEUE_DESC + 4]
        add     r3, r1, #VQ_AVAIL
        str     r3, [r0, #VIO_QUEUE_DRIVER]
        str     r2, [r0, #VIO_QUEUE_DRIVER + 4]
        add     r3, r1, #VQ_USED
        str     r3, [r0, #VIO_QUEUE_DEVICE]
        str     r2, [r0, #VIO_QUEUE_DEVICE + 4]
        mov     r3, #1
        str     r3, [r0, #VIO_QUEUE_READY]
        mov     r3, #15                 @ | DRIVER_OK
        str     r3, [r0, #VIO_STATUS]
        mov     r0, #0
        bx      lr
9:      str     r2, [r0, #VIO_STATUS]
        mov     r0, #1
        bx      lr

@ vio_desc(r0 = index, r1 = buffer, r2 = length, r3 = flags | next << 16)
vio_desc:
        ldr     r12, =vq
        add     r12, r12, r0, lsl #4
        str     r1, [r12]
        mov     r1, #0
        str     r1, [r12, #4]
        str     r2, [r12, #8]
        str     r3, [r12, #12]
        bx      lr

@ vio_run(r0 = transport): make descriptor 0 available, notify, poll the used ring, reset;
@ r0 = the length the device wrote, -1 if it did not answer
vio_run:
        ldr     r1, =vq + VQ_AVAIL
        mov     r2, #1
        dsb
        strh    r2, [r1, #2]            @ idx 1: ring[0] = 0 (zeroed) is descriptor 0
        dsb
        mov     r2, #0
        str     r2, [r0, #VIO_QUEUE_NOTIFY]
        ldr     r1, =vq + VQ_USED
        ldr     r3, =POLL
1:      ldrh    r2, [r1, #2]            @ idx
        cmp     r2, #0
        bne     2f
        subs    r3, r3, #1
        bne     1b
        mvn     r2, #0
        b       3f
2:      dsb
        ldr     r2, [r1, #8]            @ ring[0].len
3:      ldr     r3, [r0, #VIO_INT_STATUS]
        str     r3, [r0, #VIO_INT_ACK]
        mov     r3, #0
        str     r3, [r0, #VIO_STATUS]
        mov     r0, r2
        bx      lr

@ logline(r0 = address of a CNTVCT reading, r1 = message): "[%10uus] message" as barebox's dmesg -t
logline:
        push    {r5, r7, r8, lr}
        mov     r7, r1
        ldr     r0, [r0]
        mov     r1, #125                @ 62.5 ticks a microsecond
        bl      divide
        lsl     r0, r0, #1
        ldr     r8, =digits_end
        mov     r5, #10                 @ columns left
1:      mov     r1, #10
        bl      divide
        add     r1, r1, #'0'
        strb    r1, [r8, #-1]!
        sub     r5, r5, #1
        cmp     r0, #0
        bne     1b
2:      cmp     r5, #0
        movne   r1, #' '
        strbne  r1, [r8, #-1]!
        subne   r5, r5, #1
        bne     2b
        ldr     r0, =s_lbracket
        bl      puts
        mov     r0, r8
        bl      puts
        ldr     r0, =s_us
        bl      puts
        mov     r0, r7
        bl      puts
        ldr     r0, =s_crlf
        bl      puts
        pop     {r5, r7, r8, pc}

@ divide(r0 = n, r1 = d): r0 = n / d, r1 = n % d (shift and subtract: no udiv needed)
divide: mov     r2, #0
        mov     r3, #1
1:      cmp     r1, #0x80000000
        bhs     2f
        cmp     r1, r0
        lslls   r1, r1, #1
        lslls   r3, r3, #1
        bls     1b
2:      cmp     r0, r1
        subhs   r0, r0, r1
        orrhs   r2, r2, r3
        lsr     r1, r1, #1
        lsrs    r3, r3, #1
        bne     2b
        mov     r1, r0
        mov     r0, r2
        bx      lr

@ prefix(r0 = text, r1 = word): r0 = the text after "word " or "word"<NUL>, else 0
prefix: ldrb    r2, [r1], #1
        cmp     r2, #0
        beq     2f
        ldrb    r3, [r0], #1
        cmp     r2, r3
        beq     prefix
        mov     r0, #0
        bx      lr
2:      ldrb    r3, [r0]
        cmp     r3, #' '
        addeq   r0, r0, #1
        bxeq    lr
        cmp     r3, #0
        movne   r0, #0
        bx      lr

@ puts(r0 = NUL-terminated string), printing "$?" as the last status
puts:   push    {r5, lr}
        mov     r5, r0
1:      ldrb    r0, [r5], #1
        cmp     r0, #0
        popeq   {r5, pc}
        cmp     r0, #'$'
        bne     2f
        ldrb    r1, [r5]
        cmp     r1, #'?'
        moveq   r0, r6
        addeq   r5, r5, #1
2:      bl      putc
        b       1b

putc:   ldr     r1, [r4, #UART_FR]
        tst     r1, #FR_TXFF
        bne     putc
        str     r0, [r4]
        bx      lr

getc:   ldr     r1, [r4, #UART_FR]
        tst     r1, #FR_RXFE
        bne     getc
        ldr     r0, [r4]
        and     r0, r0, #0xff
        bx      lr

        .ltorg

s_banner:
        .ascii  "\r\n\r\nbarebox 2099.01.0-bbv-tiny (a test stand-in, not barebox)\r\n\r\n"
        .asciz  "model: bbv tiny guest\r\n"
s_booted:
        .asciz  "tiny: booted after a busy loop"
s_hit:  .asciz  "\r\n\r\nHit any to stop autoboot:    3"
s_prompt:
        .asciz  "\033[1;32mbarebox@\033[1;36mbbv-tiny:/\033[0m "
s_crlf: .asciz  "\r\n"
s_devs: .asciz  "full  hwrng0  null  virtioblk0  virtioblk1  zero"
s_unknown1:
        .asciz  "Unknown command '"
s_unknown2:
        .asciz  "' - try 'help'\r\n"
s_echo: .asciz  "echo"
s_true: .asciz  "true"
s_false:
        .asciz  "false"
s_ls:   .asciz  "ls"
s_hang: .asciz  "hang"
s_dmesg:
        .asciz  "dmesg"
s_reset:
        .asciz  "reset"
s_poweroff:
        .asciz  "poweroff"
s_stopped:
        .asciz  "tiny: autoboot stopped"
s_rng:  .asciz  "rng"
s_blk:  .asciz  "blk"
s_no_rng:
        .asciz  "rng: no virtio-rng device"
s_rng_setup:
        .asciz  "rng: the virtio-rng device refused its setup"
s_rng_short:
        .asciz  "rng: the virtio-rng device gave no 16 bytes"
s_no_blk:
        .asciz  "blk: no virtio-blk device"
s_blk_setup:
        .asciz  "blk: the virtio-blk device refused its setup"
s_blk_failed:
        .asciz  "blk: reading sector 0 failed"
s_lbracket:
        .asciz  "["
s_us:   .asciz  "us] "

        .bss
        .align  3
line:   .space  LINE_MAX + 1
        .align  3
        .space  1024
stack_top:
t_booted:
        .space  4
t_stopped:
        .space  4
digits: .space  10
digits_end:
        .space  4
        .align  12
vq:     .space  VQ_BYTES
