"""Pure logic of `bbv export`: the QEMU command line `bbv run` would use, turned into a labgrid
environment (as barebox's own test/*/*.yaml) or a LAVA job for the `qemu` device type."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.args import RunSpec, spec_warnings
from barebox_virtio_cli.session import shell as sh
from barebox_virtio_cli.session.report import compile_patterns
from barebox_virtio_cli.session.shell import LABGRID_PROMPT as PROMPT
from barebox_virtio_cli.targets.target import Target

BOOTSTRING = "commandline:"
# barebox's countdown line (common/startup.c), or the prompt itself when autoboot is off.
AUTOBOOT_OR_PROMPT = f"to stop autoboot|{PROMPT}"
# Options labgrid's QEMUDriver and LAVA's qemu device type set themselves.
_DRIVER_OWNED = {"-M", "-machine", "-cpu", "-m", "-kernel", "-bios", "-serial", "-monitor",
                 "-qmp"}
_ID_KEYS = ("id", "drive", "netdev", "fsdev", "chardev")
# LAVA's qemu device type (lava-server device-types/qemu.jinja2, 2023.01): the QEMU binary
# follows the `arch` context variable, which must be in its available_architectures; `cpu` and
# `machine` are used only for some arches; others get them through extra_options.
_LAVA_ARCH = {"qemu-system-arm": "arm", "qemu-system-aarch64": "aarch64",
              "qemu-system-x86_64": "x86_64"}
LAVA_ARCHES = ("arm64", "arm", "aarch64", "amd64", "x86_64", "hppa", "i386", "mips", "mipsel",
               "mips64", "nios2", "ppc", "ppc64", "riscv64", "sparc", "sparc64")
_LAVA_SETS = {"arm": ("cpu", "machine"), "aarch64": ("cpu", "machine"),
              "riscv64": ("cpu", "machine"), "mips": ("machine",), "mips64": ("machine",)}


def extra_groups(groups: list[list[str]]) -> list[list[str]]:
    """The option groups beyond binary, machine, cpu, memory, images and serial/monitor."""
    return [g for g in groups[1:] if g[0] not in _DRIVER_OWNED]


def prefix_ids(group: list[str], prefix: str = "bbv") -> list[str]:
    """Rename QemuOpts ids (id=hd0, drive=hd0, ...) so they cannot clash with ids the test
    runner adds (barebox's conftest adds '-nic user,id=net0' and 'hd0' for its own --blk)."""
    keys = "|".join(_ID_KEYS)
    pattern = re.compile(rf"(^|(?<!,),)({keys})=([A-Za-z][\w.-]*)")
    return [pattern.sub(lambda m: f"{m[1]}{m[2]}={prefix}{m[3]}", arg) for arg in group]


def _join(groups: list[list[str]]) -> str:
    return " ".join(shlex.join(g) for g in groups)


def _images(target: Target, spec: RunSpec) -> tuple[str, str | None]:
    """(barebox image key for the driver's kernel/bios field, firmware key or None)"""
    if spec.firmware and target.load == "bios":
        raise UsageError(f"target '{target.name}' loads barebox with -bios, so there is no room "
                         "for --firmware in an export")
    return spec.image.name, (Path(spec.firmware).name if spec.firmware else None)


def labgrid_env(target: Target, spec: RunSpec, groups: list[list[str]], qemu_path: str,
                strategy: Path | None, features: list[str] | None = None,
                devices: dict[str, str] | None = None) -> dict:
    """A labgrid environment like barebox's test/<arch>/*.yaml, with bbv's devices. With
    barebox's strategy, `features` (default: the transport's) are declared and the option
    groups barebox's conftest adds itself for them are left out."""
    image_key, firmware_key = _images(target, spec)
    features = features or [f"virtio-{target.transport}"]
    extra = extra_groups(groups)
    if strategy is not None:
        extra = [g for g in extra if not conftest_owned(g, features)]
    qemu = {"qemu_bin": Path(qemu_path).name, "machine": spec.machine or target.machine,
            "cpu": spec.cpu or target.cpu, "memory": spec.memory or target.memory,
            target.load: image_key}
    if firmware_key:
        qemu["bios"] = firmware_key
    qemu["display"] = "qemu-default"  # bbv's own -display none is in extra_args
    qemu["extra_args"] = _join([prefix_ids(g) for g in extra])
    drivers: dict = {"QEMUDriver": qemu,
                     "BareboxDriver": {"prompt": PROMPT, "bootstring": BOOTSTRING}}
    env: dict = {"targets": {"main": {"drivers": drivers}}}
    if strategy is not None:
        drivers["BareboxTestStrategy"] = {}
        env["targets"]["main"]["features"] = list(features)
        if devices:
            env["targets"]["main"]["devices"] = dict(devices)
    env["tools"] = {qemu["qemu_bin"]: qemu_path}
    env["images"] = {image_key: str(spec.image)}
    if firmware_key:
        env["images"][firmware_key] = spec.firmware
    if strategy is not None:
        env["imports"] = [str(strategy)]
    return env


def lava_arch(target: Target) -> str:
    return _LAVA_ARCH.get(target.qemu, target.qemu.removeprefix("qemu-system-"))


def lava_warnings(target: Target, spec: RunSpec) -> list[str]:
    """What the lab's qemu device type must add for this job (none for the stock one)."""
    warnings = spec_warnings(target, spec)
    arch = lava_arch(target)
    if arch not in LAVA_ARCHES:
        warnings.append(f"LAVA's stock qemu device type (lava-server's qemu.jinja2) has no arch "
                        f"'{arch}': the lab's device type must add '{arch}' to "
                        f"available_architectures (the template then starts {target.qemu})")
    return warnings


def lava_url(path: Path) -> str:
    """A file:// URL as LAVA's download action reads it: the path as is (it does not undo
    %-escapes)."""
    path = check_lava_name(path.resolve())
    return f"file://{path}"


def check_lava_name(path: Path) -> Path:
    """LAVA copies a downloaded file under its name into its own directory and puts that path
    into the QEMU command line without quoting, and into -drive without doubling commas, so
    such names cannot go through, whatever the URL."""
    bad = sorted({c for c in path.name if c in ",;'\"$`\\" or c.isspace()})
    if bad:
        raise UsageError(f"{path}: LAVA puts this file's name into the QEMU command unquoted, "
                         f"which breaks on {' '.join(map(repr, bad))}; rename the file or "
                         "link it under a plain name")
    return path


# lava_common/schemas (2023.01): job_name is All(str, Length(min=1, max=200)).
JOB_NAME_MAX = 200


def check_job_name(name: str) -> None:
    """A job name (from --job-name, with several targets plus the target's) LAVA's schema
    takes, refused here rather than by the server after the upload."""
    if not name:
        raise UsageError("--job-name '' is empty; give a name, or leave the option out for "
                         "'bbv TARGET'")
    if len(name) > JOB_NAME_MAX:
        raise UsageError(f"--job-name: LAVA takes a job name of at most {JOB_NAME_MAX} "
                         f"characters and this one is {len(name)} long; give a shorter one")


def check_lava_spec(spec: RunSpec) -> None:
    if spec.graphic:
        raise UsageError("--graphic opens a display window, which a LAVA worker's QEMU (run "
                         "with -nographic) does not have; leave it out of a LAVA export")
    if spec.fs:
        raise UsageError("--fs shares a directory of this machine, which a LAVA worker does "
                         "not have; leave it out of a LAVA export")
    if any(e.is_file for e in spec.env):
        raise UsageError("--env PATH=@FILE reads a file of this machine, which a LAVA worker "
                         "does not have; pass the value as PATH=VALUE")


def lava_job(target: Target, spec: RunSpec, groups: list[list[str]], job_name: str,
             commands: list[str], minutes: int,
             url: Callable[[Path], str] = lava_url, expectations: list[str] = ()) -> dict:
    """A LAVA job for the 'qemu' device type: deploy to tmpfs, boot to the barebox prompt, and
    run `commands` and check `expectations` (bbv run's --exec and --expect) as an interactive
    test. Image files become URLs (`url`: file:// ones by default) with image_arg."""
    check_lava_spec(spec)
    image_key, firmware_key = _images(target, spec)
    images = {"barebox": {"url": url(spec.image),
                          "image_arg": f"-{target.load} {{barebox}}"}}
    if firmware_key:
        images["firmware"] = {"url": url(Path(spec.firmware)),
                              "image_arg": "-bios {firmware}"}
    arch = lava_arch(target)
    context = {"arch": arch, "machine": spec.machine or target.machine,
               "cpu": spec.cpu or target.cpu, "memory": spec.memory or target.memory,
               "no_kvm": True}  # else LAVA adds -cpu host -enable-kvm on non-ARM arches
    if target.net_issue and target.net_fallback:
        # The template always adds `-net nic,model=virtio` (barebox's eth0); where barebox's
        # virtio-net hangs, a model it can use keeps an --exec dhcp or tftp working.
        context["model"] = f"model={target.net_fallback}"
    extra = [f"-{key} {shlex.quote(context[key])}" for key in ("machine", "cpu")
             if key not in _LAVA_SETS.get(arch, ())]
    disks = iter(spec.blks)
    for group in extra_groups(groups):
        if group[0] == "-drive":
            key = f"disk{sum(k.startswith('disk') for k in images)}"
            arg = re.sub(r"(^|,)file=(?:[^,]|,,)*", rf"\1file={{{key}}}", group[1])
            images[key] = {"url": url(next(disks)), "image_arg": f"-drive {arg}"}
            continue
        if group[0] == "-chardev" and "id=con0" in group[1]:
            group = ["-chardev", "pty,id=con0"]  # the socket path only exists on this machine
        extra.append(shlex.join(group))
    context["extra_options"] = extra
    boot = {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 2},
            "parameters": {"kernel-start-message": ""},
            "auto_login": {"login_prompt": AUTOBOOT_OR_PROMPT, "username": ""},
            "prompts": [PROMPT]}
    if expectations and not commands:
        # --expect alone judges the boot log, which the boot action's login would consume:
        # the boot only starts QEMU and the test reads the log.
        boot = {key: boot[key] for key in ("method", "media", "timeout")}
    actions: list[dict] = [
        {"deploy": {"to": "tmpfs", "timeout": {"minutes": 2}, "images": images}},
        # LAVA first waits for the kernel-start-message ("Linux version [0-9]"), which
        # barebox never prints: the prompt is what shows it booted. Like `bbv run`, the job
        # stops the autoboot countdown with a key (auto_login sends the empty username and
        # Enter), so barebox never tries its default boot (net boot, disk0 on EFI).
        {"boot": boot},
    ]
    if commands or expectations:
        actions.append({"test": {"timeout": {"minutes": 2}, "interactive": [
            {"name": "bbv", "prompts": [NEVER if expectations else PROMPT],
             "script": interactive_steps(commands, keep=bool(expectations))
             + expectation_steps(expectations, bool(commands))}]}})
    return {"device_type": "qemu", "job_name": job_name, "visibility": "public",
            "timeouts": {"job": {"minutes": minutes}, "action": {"minutes": min(minutes, 2)}},
            "priority": "medium", "context": context, "actions": actions}


def interactive_steps(commands: list[str], keep: bool = False) -> list[dict]:
    """One interactive step per command, passing only when barebox reports exit status 0: the
    line typed is `bbv run --exec`'s (the command, then `echo bbv-rc-NONCE=$?`), and the step
    waits for the marker with status 0 (success) or another status (failure).

    keep: the steps consume nothing of what LAVA read, so that expectation_steps still see
    the commands' output. LAVA's dispatcher (pexpect) drops the text before the end of each
    match; here every pattern is a lookahead at the start of what it holds, and each step
    waits for its marker and the prompt after it (barebox may eat what is typed before)."""
    steps = []
    for index, command in enumerate(commands):
        problem = sh.check_command(command)
        if problem:
            raise UsageError(f"--exec {sh.shorten(command)!r} {problem}")
        nonce = f"lava{index + 1:0{sh.NONCE_LENGTH - 4}d}"
        passed, failed = f"{sh.MARKER}{nonce}=0\\s", f"{sh.MARKER}{nonce}=[1-9]"
        step = {"name": _case_name(command, index),
                "command": sh.command_line(command, nonce)}
        if keep:
            passed, failed = (rf"\A(?=[\s\S]*?{marker}[\s\S]*?{PROMPT})"
                              for marker in (passed, failed))
            step["wait_for_prompt"] = False
        steps.append({**step, "successes": [{"message": passed}],
                      "failures": [{"message": failed}]})
    return steps


# The interactive script's prompt when the steps keep what LAVA read (interactive_steps): a
# prompt seen earlier would otherwise end the wait for a step's own marker.
NEVER = "(?!)"
_LAVA_MARKER = rf"{sh.MARKER}lava\d+=\d"
_GLOBAL_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def expectation_steps(expectations: list[str], after_commands: bool) -> list[dict]:
    """One named step per --expect, a test case that passes when the pattern matches where
    `bbv run` looks (session/report.checked_text): the commands' output (not the typed lines,
    not the markers), or without commands the boot log up to the autoboot countdown or
    prompt. Success and failure are the same look ahead from the start of what LAVA read,
    found or not found, so that neither consumes anything (see interactive_steps). LAVA's
    dispatcher searches the last 4000 characters it read (lava_dispatcher.shell.ShellCommand's
    searchwindowsize), so an expectation sees no further back."""
    compile_patterns(expectations)
    steps = []
    if expectations and not after_commands:
        # the boot log is complete once the countdown or the prompt shows
        steps.append({"command": None, "wait_for_prompt": False, "successes": [
            {"message": rf"\A(?=[\s\S]*?(?:{AUTOBOOT_OR_PROMPT}))"}]})
    for index, pattern in enumerate(expectations):
        where = lava_expectation(pattern, after_commands)
        steps.append({"name": _case_name(pattern, index, "expect-"), "command": None,
                      "wait_for_prompt": False,
                      "successes": [{"message": rf"\A(?={where})"}],
                      "failures": [{"message": rf"\A(?!{where})"}]})
    return steps


def lava_expectation(pattern: str, after_commands: bool) -> str:
    """An --expect pattern as LAVA's dispatcher must look for it from the start of what it
    read, with bbv run's meaning: ^ and $ per line and . not across lines (pexpect compiles
    with DOTALL), line ends as the console sends them (\\r\\n), in the commands' output:
    from the line after a typed line (...=$?) to the next status marker; or before the
    autoboot countdown or prompt."""
    flags = ""
    while found := _GLOBAL_FLAGS.match(pattern):  # global flags must lead; scoped they nest
        flags, pattern = flags + found[1], pattern[found.end():]
    flags = "".join(dict.fromkeys(flags + "m"))
    end = "\n)" if "x" in flags else ")"  # a verbose pattern's # comment ends at a newline
    scoped = f"(?{flags}{'' if 's' in flags else '-s'}:{_console_line_ends(pattern)}{end}"
    if after_commands:
        # like session.shell.command_output: from the line after the typed one (whose echo
        # a barebox warning may continue) to the status marker
        return rf"[\s\S]*?=\$\?[^\n]*\n(?:(?!{_LAVA_MARKER})[\s\S])*?(?!{_LAVA_MARKER}){scoped}"
    return rf"(?:(?!{AUTOBOOT_OR_PROMPT})[\s\S])*?{scoped}"


def _console_line_ends(pattern: str) -> str:
    """$ and \\n outside character classes also across the \\r a console puts before \\n."""
    out, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            pair = pattern[index:index + 2]
            out.append(r"(?:\r*\n)" if pair == r"\n" and not in_class else pair)
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            end = index + 1 + (pattern[index + 1:index + 2] == "^")
            end += pattern[end:end + 1] == "]"  # a ] first in the class is a character
            out.append(pattern[index:end])
            index, in_class = end, True
            continue
        elif char == "$":
            char = r"(?=\r*$)"
        out.append(char)
        index += 1
    return "".join(out)


def _case_name(text: str, index: int, prefix: str = "") -> str:
    """LAVA test case names: letters, digits, - and _ only (lava-server's job schema; its
    dispatcher would also take a dot)."""
    return f"{prefix}{index + 1}-" + \
        (re.sub(r"[^-_a-zA-Z0-9]+", "_", text).strip("_")[:40] or
         ("pattern" if prefix else "cmd"))


def to_yaml(data: dict, header: str) -> str:
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def conftest_owned(group: list[str], features: list[str]) -> bool:
    """Whether barebox's conftest adds this bbv option group itself, given the features."""
    if group == ["-global", "virtio-mmio.force-legacy=false"]:
        return "virtio-mmio" in features
    # The conftest always adds '-nographic ... -display none' for QEMU targets.
    return group[:1] in (["-display"], ["-nographic"])
