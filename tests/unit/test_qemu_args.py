import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT, need
from qemu_helpers import synthetic_info

from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.qemu.args import (
    EnvEntry,
    Icount,
    RunSpec,
    build_command,
    console_activation,
    flatten,
    format_command,
    needs_disable_modern_off,
    parse_port_forward,
    spec_warnings,
)
from barebox_virtio_cli.targets.catalog import load_catalog

pytestmark = pytest.mark.pure

CATALOG = load_catalog([ROOT / "configs"])


def argv(target: str, info=None, **spec) -> list[str]:
    spec.setdefault("image", Path("/i/barebox.img"))
    return flatten(build_command(CATALOG.get(target), RunSpec(**spec), info or synthetic_info()))


def devices(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "-device"]


def test_seed_arm_line_is_reproduced_with_current_syntax():
    args = argv("vexpress", console=Path("/tmp/foo"))
    assert args[1:7] == ["-M", "virt", "-cpu", "cortex-a7", "-m", "256M"]
    assert args[args.index("-kernel") + 1] == "/i/barebox.img"
    assert "socket,id=con0,path=/tmp/foo,server=on,wait=off" in args
    assert "virtconsole,chardev=con0,name=console.con0" in args
    assert not any("nowait" in a for a in args)


def test_seed_mips_line_uses_pci_devices_with_disable_legacy():
    args = argv("malta", rng=1, blks=[Path("/d/image1.hdimg"), Path("/d/image2.hdimg")])
    assert args[args.index("-bios") + 1] == "/i/barebox.img"
    assert devices(args) == ["virtio-rng-pci,id=rng0,disable-legacy=on",
                             "virtio-blk-pci,drive=hd0,id=blk0,disable-legacy=on",
                             "virtio-blk-pci,drive=hd1,id=blk1,disable-legacy=on"]
    assert "if=none,id=hd1,format=raw,file=/d/image2.hdimg" in args


def test_mmio_targets_force_modern_only_where_the_binary_has_the_property():
    assert "virtio-mmio.force-legacy=false" in argv("vexpress")
    no_mmio = synthetic_info(mmio=False)
    assert "-global" not in argv("malta", no_mmio)
    assert "-global" not in argv("malta")  # pci target: never


def test_arm_virt_pins_devices_to_buses_in_command_line_order():
    args = argv("vexpress", blks=[Path("/a.img"), Path("/b.img")], rng=1)
    assert [d.split("bus=")[1] for d in devices(args)] == [
        "virtio-mmio-bus.0", "virtio-mmio-bus.1", "virtio-mmio-bus.2"]
    assert devices(args)[1].startswith("virtio-blk-device,drive=hd0")


def test_riscv_keeps_order_without_pinning():
    assert not any("bus=" in d for d in devices(argv("riscv64", blks=[Path("/a.img")])))


def test_pci_properties_only_on_types_that_have_them():
    info = synthetic_info()
    info.properties["virtio-rng-pci"] = {"addr"}  # a build whose rng lacks the property
    assert devices(argv("malta", info, rng=1)) == ["virtio-rng-pci,id=rng0"]


@pytest.mark.parametrize("version,machine,expected", [
    ((7, 2, 0), "malta", False),
    ((2, 6, 0), "malta", True),
    ((7, 2, 0), "pc-i440fx-2.6", True),
    ((7, 2, 0), "pc-i440fx-2.7", False),
    ((7, 2, 0), "virt-2.6,highmem=off", True),
])
def test_disable_modern_off_where_version_or_machine_needs_it(version, machine, expected):
    assert needs_disable_modern_off(machine, synthetic_info(version=version)) is expected
    args = argv("x86-efi", synthetic_info(version=version), machine=machine, rng=1)
    assert ("disable-modern=off" in devices(args)[0]) is expected


def test_machine_alias_is_resolved_before_the_version_check():
    old = synthetic_info(machines={"pc": "pc-i440fx-2.5"})
    assert needs_disable_modern_off("pc", old)


def test_commas_doubled_in_option_values_but_not_in_kernel_or_bios():
    args = argv("vexpress", image=Path("/x,y/bb.img"), blks=[Path("/d/a,b.img")],
                fs=[("t", Path("/s,h"))], env=[EntryFile := EnvEntry("nv/a", "x,y")])
    assert args[args.index("-kernel") + 1] == "/x,y/bb.img"
    assert "if=none,id=hd0,format=raw,file=/d/a,,b.img" in args
    assert "local,security_model=none,id=fs0,path=/s,,h" in args
    assert f"name=opt/org.barebox.env/{EntryFile.path},string=x,,y" in args


def test_console_activation_follows_machine_and_qemu_version():
    info72, info80 = synthetic_info(version=(7, 2, 0)), synthetic_info(version=(8, 0, 0))
    assert console_activation(CATALOG.get("vexpress"), info72) == "fw_cfg"
    assert console_activation(CATALOG.get("malta"), info72) == "manual"
    assert console_activation(CATALOG.get("riscv64"), info72) == "active"
    args = argv("vexpress", console=Path("/c"))
    assert "name=opt/org.barebox.env/nv/dev.cs1.active,string=ioe" in args
    assert not any("fw_cfg" in a for a in argv("malta", console=Path("/c")))
    env = [EnvEntry("nv/x", "1")]
    assert "-fw_cfg" in argv("riscv64", info80, env=env)


def test_env_refused_where_fw_cfg_does_not_work():
    with pytest.raises(UsageError, match="target 'malta' \\(malta\\) has no fw_cfg device; --env"):
        argv("malta", env=[EnvEntry("nv/x", "1")])
    with pytest.raises(UsageError, match="needs QEMU 8.0 or later \\(this is 7.2.0\\)"):
        argv("riscv64", env=[EnvEntry("nv/x", "1")])


def test_env_file_is_passed_as_file():
    args = argv("vexpress", env=[EnvEntry("boot/x", "/h/script", is_file=True)])
    assert "name=opt/org.barebox.env/boot/x,file=/h/script" in args


def test_fw_cfg_name_limit():
    with pytest.raises(UsageError, match="limits fw_cfg names to 55"):
        argv("vexpress", env=[EnvEntry("nv/" + "x" * 33, "1")])
    argv("vexpress", env=[EnvEntry("nv/" + "x" * 32, "1")])


def test_no_more_devices_than_mmio_transports():
    argv("riscv64", blks=[Path(f"/{i}.img") for i in range(8)])
    with pytest.raises(UsageError, match="9 virtio devices.*only 8 virtio-mmio transports"):
        argv("riscv64", blks=[Path(f"/{i}.img") for i in range(8)], rng=1)
    with pytest.raises(UsageError, match="only 32"):
        argv("vexpress", rng=33)


def test_devices_missing_from_the_binary_are_refused():
    info = synthetic_info()
    info.types.discard("virtio-9p-device")
    with pytest.raises(UsageError, match="no device 'virtio-9p-device'"):
        argv("vexpress", info, fs=[("t", Path("/s"))])


def test_headless_serial_on_terminal_and_graphic_display():
    args = argv("malta")
    assert args[args.index("-display") + 1] == "none"
    assert args[args.index("-serial") + 1] == "mon:stdio"
    assert "-display" not in argv("malta", graphic=True, window=True)
    logged = argv("malta", serial="file:/tmp/serial.log")
    assert logged[logged.index("-monitor") + 1] == "none"


def test_snapshot_and_net_and_passthrough():
    args = argv("vexpress", blks=[Path("/a.img")], snapshot=True, net=True,
                port_forwards=[parse_port_forward("8080:80")], qemu_args=["-s", "-S"])
    assert "if=none,id=hd0,format=raw,file=/a.img,snapshot=on" in args
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80" in args
    assert args[-2:] == ["-s", "-S"]


@pytest.mark.parametrize("text,rule", [("8080:80", "tcp:127.0.0.1:8080-:80"),
                                        ("udp:69", "udp:127.0.0.1:69-:69"),
                                        ("tcp:2222:22", "tcp:127.0.0.1:2222-:22")])
def test_port_forward_rules(text, rule):
    assert parse_port_forward(text) == rule


@pytest.mark.parametrize("text", ["http:80", "1:2:3", "0:80", "70000", "a:b"])
def test_bad_port_forwards(text):
    with pytest.raises(UsageError, match="is not \\[tcp:\\|udp:\\]HOSTPORT"):
        parse_port_forward(text)


def test_port_forward_needs_net():
    with pytest.raises(UsageError, match="--port-forward needs --net"):
        argv("vexpress", port_forwards=["tcp:127.0.0.1:1-:1"])


@need("bash")  # the real shell is the point: what bbv prints must paste into one
def test_printed_command_pastes_back_to_the_same_argv():
    groups = build_command(CATALOG.get("vexpress"), RunSpec(
        image=Path("/my images/bb's.img"), blks=[Path("/d/a b,c.img")], console=Path("/t/$x"),
        env=[EnvEntry("nv/msg", "hello world; rm -rf /")]), synthetic_info())
    script = "args() { printf '%s\\0' \"$@\"; }; args " + format_command(groups)
    parsed = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert parsed.decode().split("\0")[:-1] == flatten(groups)


def test_firmware_goes_to_bios_but_not_on_bios_loaded_targets():
    args = argv("riscv32", firmware="/fw/opensbi32.bin")
    assert args[args.index("-bios") + 1] == "/fw/opensbi32.bin"
    with pytest.raises(UsageError, match="loads barebox itself with -bios"):
        argv("malta", firmware="/fw/x.bin")


def test_net_on_a_target_whose_barebox_virtio_net_hangs_warns_and_offers_its_fallback():
    spec = RunSpec(image=Path("/i.img"), net=True, port_forwards=[parse_port_forward("2222:22")])
    (warning,) = spec_warnings(CATALOG.get("malta"), spec)
    assert "virtio-net driver (as of v2026.06) hangs in its first transmit" in warning
    assert warning.endswith("replace --net --port-forward ... with --qemu-arg=-nic "
                            "--qemu-arg=user,model=e1000,hostfwd=tcp:127.0.0.1:2222-:22")
    assert spec_warnings(CATALOG.get("vexpress"), spec) == []  # virtio-net works there
    assert spec_warnings(CATALOG.get("malta"), RunSpec(image=Path("/i.img"))) == []


def test_deterministic_with_a_disk_warns_that_guest_time_can_move():
    blk = RunSpec(image=Path("/i.img"), blks=[Path("/d.img")], icount=Icount())
    (warning,) = spec_warnings(CATALOG.get("malta"), blk)
    assert warning.startswith("--deterministic with --blk: ") and "--record" in warning
    assert spec_warnings(CATALOG.get("malta"), replace(blk, blks=[])) == []
    assert spec_warnings(CATALOG.get("malta"), replace(blk, icount=None)) == []
    recorded = replace(blk, icount=Icount("record", Path("/r/replay.bin")))
    assert spec_warnings(CATALOG.get("malta"), recorded) == []  # reads replay in place
def test_console_is_a_pipe_when_bbv_serves_it_and_qemus_socket_otherwise():
    image = Path("/i.img")
    served = argv("vexpress", image=image, console=Path("/run/c.sock"),
                  console_pipe=Path("/tmp/bbv-vc-1-a,b/con0"))
    assert "pipe,id=con0,path=/tmp/bbv-vc-1-a,,b/con0" in served
    assert not any("/run/c.sock" in arg for arg in served)  # bbv, not QEMU, serves the socket
    printed = argv("vexpress", image=image, console=Path("/run/c.sock"))
    assert "socket,id=con0,path=/run/c.sock,server=on,wait=off" in printed
    for args in (served, printed):
        assert "virtconsole,chardev=con0,name=console.con0" in args


def test_fs_tags_are_checked(tmp_path):
    from barebox_virtio_cli.run.inputs import parse_fs

    assert parse_fs(f"ok.tag-1_x={tmp_path}", 0) == ("ok.tag-1_x", tmp_path.resolve())
    assert parse_fs(str(tmp_path), 0) == (tmp_path.resolve().name, tmp_path.resolve())
    with pytest.raises(UsageError, match=r"^--fs =\S+: the TAG before '=' is empty; "):
        parse_fs(f"={tmp_path}", 0)
    for tag in ("a,b", "a b", "a/b", "ä"):
        with pytest.raises(UsageError, match=f"TAG '{tag}' may hold only letters, digits"):
            parse_fs(f"{tag}={tmp_path}", 0)
    odd = tmp_path / "my share"
    odd.mkdir()
    with pytest.raises(UsageError, match="the directory's name 'my share' is not a usable tag"):
        parse_fs(str(odd), 0)
