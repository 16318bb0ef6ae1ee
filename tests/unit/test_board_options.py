"""The board-debugging options of `bbv run` (--bootarg, --dtb, --dump-dtb, --flash, --graphic,
--screenshot, --qemu) as pure logic and file checks, without QEMU (their bad-input lines through
the real command: tests/integration/test_board_qemu.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT
from qemu_helpers import synthetic_info

from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.qemu import display, dtb, flash
from barebox_virtio_cli.qemu.args import EnvEntry, RunSpec, build_command, flatten
from barebox_virtio_cli.qemu.board import BoardOptions, qemu_binary
from barebox_virtio_cli.targets.catalog import load_catalog, parse_target

pytestmark = pytest.mark.pure
CATALOG = load_catalog([ROOT / "configs"])
MIB = 1 << 20


def argv(target: str, info=None, **spec) -> list[str]:
    spec.setdefault("image", Path("/i/barebox.img"))
    return flatten(build_command(CATALOG.get(target), RunSpec(**spec), info or synthetic_info()))


def after(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


# --- command lines --------------------------------------------------------------------------

def test_bootargs_are_one_append_on_kernel_targets():
    args = argv("vexpress", bootargs=["foo=bar", "barebox.security.policy=devel"])
    assert after(args, "-append") == "foo=bar barebox.security.policy=devel"
    assert args.index("-append") == args.index("-kernel") + 2


@pytest.mark.parametrize("name", ["malta", "virt", "virt64"])
def test_bootargs_on_bios_targets_are_refused(name):
    with pytest.raises(UsageError, match=r"--bootarg: target '.*' loads barebox with -bios"):
        argv(name, bootargs=["foo=bar"])


def test_bootargs_without_a_device_tree_are_refused():
    with pytest.raises(UsageError, match=r"--bootarg: .* target 'x86-efi' \(pc\) has no device"):
        argv("x86-efi", bootargs=["foo=bar"])


def test_dtb_and_dump_dtb_only_on_device_tree_machines():
    args = argv("riscv64", dtb=Path("/d/a,b.dtb"), dump_dtb=Path("/d/out,put.dtb"))
    assert after(args, "-dtb") == "/d/a,b.dtb"  # -dtb takes its path raw, like -kernel
    assert args[-2:] == ["-machine", "dumpdtb=/d/out,,put.dtb"]  # a QemuOpts value: doubled
    for name in ("malta", "x86-efi"):
        with pytest.raises(UsageError, match="has no device tree from QEMU"):
            argv(name, dtb=Path("/d/a.dtb"))
        with pytest.raises(UsageError, match="--dump-dtb: .* has no device tree"):
            argv(name, dump_dtb=Path("/d/a.dtb"))


def test_dump_dtb_needs_no_image():
    args = argv("vexpress", image=None, dump_dtb=Path("/d/x.dtb"))
    assert "-kernel" not in args and "-bios" not in args


def test_flash_replaces_bios_with_the_first_pflash_bank():
    args = argv("virt", flash=Path("/f/my,flash.img"))
    assert "-bios" not in args
    assert after(args, "-drive") == "if=pflash,format=raw,unit=0,file=/f/my,,flash.img"
    assert after(argv("virt"), "-bios") == "/i/barebox.img"  # as barebox's virt@multi_v7


@pytest.mark.parametrize("name", ["vexpress", "armv8", "malta", "riscv64", "x86-efi"])
def test_flash_elsewhere_is_refused(name):
    with pytest.raises(UsageError, match="--flash: target"):
        argv(name, flash=Path("/f/flash.img"))


def test_graphic_devices_follow_barebox_conftest():
    mmio = argv("vexpress", graphic=True)
    assert "ramfb" in mmio and "virtio-keyboard-device,id=kbd0,bus=virtio-mmio-bus.0" in mmio
    assert after(mmio, "-display") == "none"
    assert argv("vexpress", graphic=True, input=True).count("-device") == 2  # one keyboard
    malta = argv("malta", graphic=True)
    assert malta[malta.index("-vga"):malta.index("-vga") + 4] == ["-vga", "none", "-device",
                                                                  "VGA"]
    assert not any(a.startswith("virtio-keyboard") for a in malta)  # malta has its own
    x86 = argv("x86-efi", graphic=True, firmware="/o/OVMF.fd")
    assert x86[x86.index("-vga"):x86.index("-vga") + 2] == ["-vga", "std"]  # OVMF's GOP there
    assert "isa-vga" not in x86
    assert "-display" not in argv("vexpress", graphic=True, window=True)


def test_graphic_activates_the_framebuffer_console_where_fw_cfg_works():
    fb = "name=opt/org.barebox.env/nv/dev.fbconsole0.active,string=ioe"
    assert fb in argv("vexpress", graphic=True)
    assert fb not in argv("vexpress")
    mine = argv("vexpress", graphic=True, env=[EnvEntry("nv/dev.fbconsole0.active", "o")])
    assert fb not in mine and "name=opt/org.barebox.env/nv/dev.fbconsole0.active,string=o" in mine
    assert not any(a.startswith("name=opt/") for a in argv("malta", graphic=True))


def test_without_fw_cfg_the_user_is_told_what_to_type(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    board = BoardOptions()
    spec = RunSpec(image=Path("/i/b.img"), graphic=True)
    board.apply(CATALOG.get("malta"), synthetic_info(), spec)
    assert spec.window and board.notes == [
        "malta cannot activate barebox's framebuffer console at boot; type "
        "'fbconsole0.active=ioe' (or --exec it) to see it on the screen"]


def test_ramfb_needs_fw_cfg():
    with pytest.raises(UsageError, match="ramfb, which needs fw_cfg.*QEMU 8.0 or later"):
        argv("riscv64", graphic=True)
    assert "ramfb" in argv("riscv64", synthetic_info(version=(8, 0, 0)), graphic=True)


def test_every_target_says_what_it_can_do():
    for target in CATALOG.targets.values():
        assert target.graphic, target.name
        assert target.device_tree == (target.machine.split(",")[0] == "virt"), target.name
        assert bool(target.pflash_mib) == (target.name in ("virt", "virt64")), target.name


def test_flash_size_only_on_firmware_targets(tmp_path):
    data = {k: v for k, v in vars(CATALOG.get("vexpress")).items() if k not in ("name", "path")}
    data["pflash_mib"] = 64
    with pytest.raises(BbvError, match="pflash_mib"):
        parse_target(tmp_path / "x.toml", data)


def test_catalog_cache_is_not_reused_by_a_bbv_with_other_fields(tmp_path, monkeypatch):
    from barebox_virtio_cli.targets import catalog

    load_catalog([ROOT / "configs"])
    cache = Path(os.environ["BBV_CACHE_DIR"]) / "catalog.json"
    import json

    data = json.loads(cache.read_text())
    for raw in data["targets"]:  # what an older bbv cached: no device_tree field
        raw.pop("device_tree")
    data["fields"].remove("device_tree")
    cache.write_text(json.dumps(data))
    assert catalog.load_catalog([ROOT / "configs"]).get("vexpress").device_tree


# --- --flash files ---------------------------------------------------------------------------

@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "barebox-qemu-virt.img"
    path.write_bytes(os.urandom(3000))
    return path


def test_flash_is_created_from_the_image_padded_erased(tmp_path, image):
    plan = flash.plan_flash(tmp_path / "flash.img", image, 1)
    assert plan.action == flash.CREATE and not plan.path.exists()  # planning writes nothing
    flash.apply_flash(plan)
    data = plan.path.read_bytes()
    assert len(data) == MIB and data[:3000] == image.read_bytes()
    assert data[3000:] == b"\xff" * (MIB - 3000)
    assert not list(tmp_path.glob(".flash.img.*"))  # no temporary file left


def test_dry_run_writes_no_flash(tmp_path, image):
    flash.apply_flash(flash.plan_flash(tmp_path / "flash.img", image, 1), dry_run=True)
    assert not (tmp_path / "flash.img").exists()


def test_existing_flash_is_booted_as_it_is(tmp_path, image, capfd):
    path = tmp_path / "flash.img"
    flash.apply_flash(flash.plan_flash(path, image, 1))
    with open(path, "r+b") as fh:  # what barebox saved: the environment
        fh.seek(MIB - 16)
        fh.write(b"environment-here")
    image.write_bytes(os.urandom(2000))  # a new build
    plan = flash.plan_flash(path, image, 1)
    assert plan.action == flash.USE
    assert "holds another barebox" in capfd.readouterr().err
    before = path.read_bytes()
    flash.apply_flash(plan)
    assert path.read_bytes() == before
    flash.apply_flash(flash.plan_flash(path, image, 1, reflash=True))
    after_reflash = path.read_bytes()
    assert after_reflash[:2000] == image.read_bytes()
    assert after_reflash[2000:] == before[2000:]  # the environment is kept


@pytest.mark.parametrize("size", [0, 4096, MIB + 1])
def test_a_file_of_another_size_is_never_touched(tmp_path, image, size):
    path = tmp_path / "disk.img"
    content = os.urandom(size)
    path.write_bytes(content)
    for reflash in (False, True):
        with pytest.raises(UsageError, match=f"exists and is {size} bytes, not a 1 MiB flash"):
            flash.plan_flash(path, image, 1, reflash)
    assert path.read_bytes() == content


def test_flash_path_problems(tmp_path, image):
    with pytest.raises(UsageError, match="directory .* does not exist"):
        flash.plan_flash(tmp_path / "no" / "flash.img", image, 1)
    with pytest.raises(UsageError, match="not a regular file"):
        flash.plan_flash(tmp_path, image, 1)
    with pytest.raises(UsageError, match="no barebox image"):
        flash.plan_flash(tmp_path / "new.img", None, 1)
    big = tmp_path / "big.img"
    big.write_bytes(bytes(MIB + 1))
    with pytest.raises(UsageError, match="more than the 1 MiB flash"):
        flash.plan_flash(tmp_path / "new.img", big, 1)


def test_not_a_flash_target_names_the_ones_that_are():
    message = flash.not_a_flash_target(CATALOG.get("vexpress"))
    assert "'virt' or 'virt64'" in message and "-kernel" in message


# --- --dtb, --dump-dtb ------------------------------------------------------------------------

def test_dtb_checks(tmp_path):
    with pytest.raises(UsageError, match="--dtb .*: no such file"):
        dtb.check_dtb(tmp_path / "missing.dtb")
    source = tmp_path / "board.dts"
    source.write_text("/dts-v1/; / { };")
    with pytest.raises(UsageError, match="not a compiled device tree.*dtc -I dts -O dtb"):
        dtb.check_dtb(source)
    good = tmp_path / "good.dtb"
    good.write_bytes(dtb.FDT_MAGIC + bytes(60))
    assert dtb.check_dtb(good) == good


def test_dump_dtb_never_replaces_another_file(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(UsageError, match="exists and is not a device tree"):
        dtb.check_dump_path(other)
    with pytest.raises(UsageError, match="does not exist"):
        dtb.check_dump_path(tmp_path / "no" / "x.dtb")
    old = tmp_path / "old.dtb"
    old.write_bytes(dtb.FDT_MAGIC + bytes(60))
    assert dtb.check_dump_path(old) == old


# --- --graphic, --screenshot --------------------------------------------------------------------

def test_headless_graphic_never_opens_a_window(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    window, note = display.show_window(True, None)
    assert not window and "-display none" in note and "--screenshot" in note
    monkeypatch.setenv("DISPLAY", ":0")
    assert display.show_window(True, None) == (True, None)
    assert display.show_window(True, Path("/s.png")) == (False, None)  # screenshots: headless
    assert display.show_window(False, None) == (False, None)


def test_screenshot_path_checks(tmp_path):
    info = synthetic_info()
    assert display.check_screenshot_path(tmp_path / "a.png", info) == tmp_path / "a.png"
    with pytest.raises(UsageError, match="name it .png or .ppm"):
        display.check_screenshot_path(tmp_path / "a.jpg", info)
    with pytest.raises(UsageError, match="PNG needs QEMU 7.1"):
        display.check_screenshot_path(tmp_path / "a.png", synthetic_info(version=(7, 0, 0)))
    with pytest.raises(UsageError, match="directory .*/missing does not exist"):
        display.check_screenshot_path(tmp_path / "missing" / "a.ppm", info)
    text = tmp_path / "notes.ppm"
    text.write_text("not a picture")
    with pytest.raises(UsageError, match="exists and is not a PPM or PNG"):
        display.check_screenshot_path(text, info)


def test_picture_size_from_headers(tmp_path):
    ppm = tmp_path / "a.ppm"
    ppm.write_bytes(b"P6\n640 480\n255\n" + bytes(30))
    assert display.picture_size(ppm) == (640, 480)
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (800).to_bytes(4, "big")
                    + (600).to_bytes(4, "big") + bytes(8))
    assert display.picture_size(png) == (800, 600)


def test_option_combinations():
    with pytest.raises(UsageError, match="--reflash belongs to --flash"):
        BoardOptions(reflash=True).check_combination(False, False)
    with pytest.raises(UsageError, match="--dump-dtb .* leave out --exec/--expect"):
        BoardOptions(dump_dtb="x.dtb").check_combination(True, False)
    with pytest.raises(UsageError, match="--dump-dtb .* leave out --screenshot"):
        BoardOptions(dump_dtb="x.dtb", screenshot="s.png").check_combination(False, False)
    with pytest.raises(UsageError, match="--screenshot .* cannot go with --attach"):
        BoardOptions(screenshot="s.png").check_combination(False, True)


# --- --qemu ----------------------------------------------------------------------------------

def test_qemu_binary_checks(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="no such file"):
        qemu_binary(str(tmp_path / "qemu-system-arm"))
    with pytest.raises(UsageError, match="nor a program on PATH"):
        qemu_binary("qemu-system-nonesuch")
    with pytest.raises(UsageError, match="is a directory"):
        qemu_binary(str(tmp_path))
    plain = tmp_path / "qemu"
    plain.write_text("")
    with pytest.raises(UsageError, match="not executable"):
        qemu_binary(str(plain))
    monkeypatch.chdir(tmp_path)  # a bare name of a file here, not on PATH
    with pytest.raises(UsageError, match="^--qemu qemu: not executable;"):
        qemu_binary("qemu")
    plain.chmod(0o755)
    assert qemu_binary(str(plain)) == str(plain)

