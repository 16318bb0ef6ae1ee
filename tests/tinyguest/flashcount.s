@ A tiny stand-in for barebox on a flash target (bbv's `virt`, QEMU -M virt with pflash0 as
@ the firmware), for the --flash tests. Not barebox code. It counts its boots in the NOR flash:
@ prints "boot count: N" (N = the word at flash offset 0x3c00000, where barebox keeps its
@ environment; 0 while erased), programs N+1 there with the CFI command set QEMU's pflash
@ models, then prints a barebox-like prompt and sleeps. Flash cannot be read while it is being
@ programmed, so the code first copies itself to RAM (its link address) and runs there; loaded
@ there by -kernel it runs in place.

        .syntax unified
        .arm
        .equ    UART, 0x09000000
        .equ    UART_FR, 0x18
        .equ    FR_TXFF, 0x20
        .equ    COUNTER, 0x03c00000
        .equ    CMD_PROGRAM, 0x00400040 @ word program, to both 16-bit chips of the bank
        .equ    CMD_READ_ARRAY, 0x00ff00ff
        .equ    STATUS_READY, 0x80

        .text
        .global _start
_start:
        adr     r0, _start              @ where this runs: 0 (flash) or the link address
        ldr     r1, =_start
        ldr     r2, =image_end
        cmp     r0, r1
        beq     main
copy:   ldr     r3, [r0], #4
        str     r3, [r1], #4
        cmp     r1, r2
        blo     copy
        ldr     pc, =main

main:   ldr     sp, =stack_top
        ldr     r4, =UART
        ldr     r0, =s_count
        bl      puts
        ldr     r5, =COUNTER
        ldr     r6, [r5]
        cmn     r6, #1                  @ erased flash reads all ones
        moveq   r6, #0
        add     r0, r6, #'0'            @ one digit is enough for the tests
        bl      putc
        ldr     r0, =s_crlf
        bl      puts
        add     r6, r6, #1
        ldr     r0, =CMD_PROGRAM
        str     r0, [r5]
        str     r6, [r5]
1:      ldr     r0, [r5]                @ the status register until the chip is ready
        tst     r0, #STATUS_READY
        beq     1b
        ldr     r0, =CMD_READ_ARRAY
        str     r0, [r5]
        ldr     r0, =s_saved
        bl      puts
        ldr     r0, =s_prompt
        bl      puts
2:      wfi
        b       2b

puts:   push    {r5, lr}
        mov     r5, r0
1:      ldrb    r0, [r5], #1
        cmp     r0, #0
        popeq   {r5, pc}
        bl      putc
        b       1b

putc:   ldr     r1, [r4, #UART_FR]
        tst     r1, #FR_TXFF
        bne     putc
        str     r0, [r4]
        bx      lr

        .ltorg

s_count:
        .asciz  "\r\nbbv flash counter (a test stand-in, not barebox)\r\nboot count: "
s_saved:
        .asciz  "saved the next count to flash\r\n"
s_prompt:
        .asciz  "\033[1;32mbarebox@\033[1;36mbbv-flash:/\033[0m "
s_crlf: .asciz  "\r\n"
        .align  2
image_end:

        .bss
        .align  3
        .space  1024
stack_top:
