@ A tiny stand-in for barebox, so that the scripted-boot tests run against real QEMU without a
@ barebox image. Not barebox code. ARMv7 (QEMU -M virt), PL011 UART at 0x09000000, linked at
@ 0x40010000 where QEMU loads a raw -kernel image. It prints a barebox-like banner and autoboot
@ line, waits for a key, then reads lines at a barebox-like prompt, splits them at ';' and runs:
@   echo ARGS (with $? replaced by the last status), true, false, ls (fake /dev), hang (forever),
@   dmesg (two log lines in `dmesg -t` form: boot time after a busy loop, printed before the
@   autoboot line, and when the key came; from the generic timer, 62.5 MHz in QEMU),
@   reset and poweroff (PSCI SYSTEM_RESET / SYSTEM_OFF through QEMU's hvc conduit);
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
