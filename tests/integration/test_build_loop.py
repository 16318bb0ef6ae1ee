"""The edit-build-boot loop on the miniature barebox tree (tests/fixtures/minibarebox, which
makes several images per defconfig and knows `make images/NAME` like barebox): only the
target's image, --all-images, the fallback for older trees, ccache (real ccache, its own
statistics), an interrupted first build, and `bbv run --build` booting the tiny guest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BBV, ROOT, bbv, need

from barebox_virtio_cli.build.record import BuildRecord, read_record

pytestmark = need("make", "arm-linux-gnueabihf-gcc")
FIXTURE = ROOT / "tests" / "fixtures" / "minibarebox"
TINYGUEST = ROOT / "tests" / "tinyguest" / "tinyguest.s"
V7_IMAGES = {"barebox-dt-2nd.img", "barebox-vexpress-ca9.img", "barebox-qemu-virt.img"}


@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    return src


def built_images(out: Path) -> set[str]:
    return {p.name for p in (out / "images").iterdir()}


def record(out: Path) -> dict:
    return json.loads((out / "bbv-build.json").read_text())


# --- only what the target boots ------------------------------------------------------------

def test_target_build_makes_only_the_targets_image_and_the_elf(tree):
    done = bbv("build", "vexpress", "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    out = tree / "build-vexpress"
    assert built_images(out) == {"barebox-dt-2nd.img"}
    assert (out / "barebox").is_file()  # the ELF gdb loads
    assert "make -j" in (out / "bbv-build.log").read_text()
    assert "images/barebox-dt-2nd.img\n" in (out / "bbv-build.log").read_text()
    assert "built only the target's image" in done.stdout
    rec = record(out)
    assert rec["scope"] == "target" and rec["goals"] == ["images/barebox-dt-2nd.img"]


def test_all_images_builds_every_image_of_the_defconfig(tree):
    done = bbv("build", "vexpress", "--all-images", "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    out = tree / "build-vexpress"
    assert built_images(out) == V7_IMAGES
    assert record(out)["scope"] == "all" and record(out)["goals"] == ["all"]
    assert "and 2 other images in" in done.stdout and "built only" not in done.stdout


def test_a_named_defconfig_builds_every_image(tree, tmp_path):
    out = tmp_path / "out"
    done = bbv("build", "multi_v7_defconfig", "-O", str(out), "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert built_images(out) == V7_IMAGES and record(out)["scope"] == "all"


def test_tree_without_image_goals_gets_a_full_build_and_says_so(tree):
    makefile = tree / "Makefile"
    text = makefile.read_text()
    assert "\nimages/%: " in text
    makefile.write_text(text.replace("\nimages/%: ", "\nold-images-%: "))
    done = bbv("build", "vexpress", "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "no images/% goal (older barebox): building every image" in done.stderr
    assert built_images(tree / "build-vexpress") == V7_IMAGES
    assert record(tree / "build-vexpress")["scope"] == "all"


def test_image_kbuild_does_not_know_falls_back_to_a_full_build(tree):
    config = tree / "arch" / "arm" / "configs" / "multi_v7_defconfig"
    config.write_text(config.read_text().replace('"barebox-dt-2nd.img"', '"barebox-other.img"'))
    done = bbv("build", "vexpress", "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert ("cannot make images/barebox-dt-2nd.img on its own; building every image"
            in done.stderr)
    assert "barebox-dt-2nd.img was not built" in done.stdout
    assert "barebox-other.img" in built_images(tree / "build-vexpress")


# --- ccache -----------------------------------------------------------------------------------

def ccache_stats(cache: Path) -> dict[str, int]:
    done = subprocess.run(["ccache", "--print-stats"], env={**os.environ, "CCACHE_DIR": str(cache)},
                          capture_output=True, text=True, check=True)
    return {k: int(v) for k, v in (line.split("\t") for line in done.stdout.splitlines())}


@need("ccache")
def test_second_clean_build_hits_the_ccache(tree, tmp_path):
    cache = tmp_path / "ccache"
    env = {"CCACHE_DIR": str(cache)}
    first = bbv("build", "vexpress", cwd=tree, env=env)
    assert first.returncode == 0, first.stderr
    assert "through ccache " in first.stderr and f"($CCACHE_DIR {cache})" in first.stderr
    before = ccache_stats(cache)
    assert before["direct_cache_hit"] + before["preprocessed_cache_hit"] == 0
    assert before["cache_miss"] >= 1
    again = bbv("build", "vexpress", "--clean", cwd=tree, env=env)
    assert again.returncode == 0, again.stderr
    after = ccache_stats(cache)
    assert after["direct_cache_hit"] + after["preprocessed_cache_hit"] >= 1
    assert after["cache_miss"] == before["cache_miss"]
    assert record(tree / "build-vexpress")["ccache"] is True
    log = (tree / "build-vexpress" / "bbv-build.log").read_text()
    assert "CROSS_COMPILE=" + shutil.which("ccache") + " arm-linux-gnueabihf-" in log


@need("ccache")
def test_ccache_uses_bbvs_own_cache_dir_unless_ccache_dir_is_set(tree, bbv_dirs):
    done = bbv("build", "vexpress", cwd=tree, env={"CCACHE_DIR": None}, timeout=120)
    assert done.returncode == 0, done.stderr
    own = bbv_dirs / "cache" / "ccache"
    assert f"(bbv's cache {own})" in done.stderr
    assert ccache_stats(own)["cache_miss"] >= 1


@need("ccache")
def test_ccache_off_by_option_and_by_config_file(tree, bbv_dirs):
    done = bbv("build", "vexpress", "--no-ccache", cwd=tree)
    assert done.returncode == 0 and "through ccache" not in done.stderr
    assert record(tree / "build-vexpress")["ccache"] is False
    (bbv_dirs / "config").mkdir(parents=True, exist_ok=True)
    (bbv_dirs / "config" / "config.toml").write_text("[build]\nccache = false\n")
    done = bbv("build", "vexpress", "--clean", cwd=tree)
    assert done.returncode == 0 and "through ccache" not in done.stderr
    assert " CROSS_COMPILE=arm-linux-gnueabihf- " in (tree / "build-vexpress" /
                                                      "bbv-build.log").read_text()
    (bbv_dirs / "config" / "config.toml").write_text("[build]\nccache = 'no'\n")
    done = bbv("build", "vexpress", cwd=tree)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("[build] ccache must be true or false, not 'no'")


@need("ccache")
def test_broken_ccache_is_skipped_with_one_line(tree, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = bbv("build", "vexpress", cwd=tree, env={"CCACHE_DIR": str(blocker / "cache")})
    assert done.returncode == 0, done.stderr
    assert f"ccache: cache directory {blocker / 'cache'}: Not a directory; building without " \
           "ccache" in done.stderr
    assert record(tree / "build-vexpress")["ccache"] is False
    # A ccache that does not run: its configuration file is broken.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ccache.conf").write_text("max_size = lots\n")
    done = bbv("build", "vexpress", "--clean", cwd=tree, env={"CCACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert "--version' failed (ccache: error: " in done.stderr
    assert 'invalid size: "lots"); building without ccache' in done.stderr
    assert record(tree / "build-vexpress")["ccache"] is False


# --- an interrupted first build -------------------------------------------------------------

def test_first_build_interrupted_early_leaves_a_directory_bbv_accepts(tree, tmp_path):
    makefile = tree / "Makefile"  # a slow configure step: the first seconds of a real build
    text = makefile.read_text()
    makefile.write_text(text.replace("%_defconfig:\n", "%_defconfig:\n\t@sleep 3\n", 1))
    for delay in (0.0, 0.3, 1.5):
        out = tmp_path / f"out-{delay}"
        proc = subprocess.Popen([*BBV, "build", "vexpress", "-O", str(out), "--no-ccache"],
                                cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert out.is_dir() and (out / "bbv-build.json").is_file()
        assert read_record(out) == BuildRecord("vexpress", out, complete=False)
        done = bbv("build", "vexpress", "-O", str(out), "--clean", "--no-ccache", cwd=tree)
        assert done.returncode == 0, done.stderr
    again = bbv("build", "vexpress", "-O", str(out), "--no-ccache", cwd=tree)
    assert again.returncode == 0, again.stderr
    assert (out / "images" / "barebox-dt-2nd.img").is_file()


def test_interrupted_build_without_clean_configures_again(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".bbv-lock").write_text("")
    (out / "bbv-build.log").write_text("")
    (out / "bbv-build.json").write_text(json.dumps({"target": "vexpress", "complete": False}))
    done = bbv("build", "vexpress", "-O", str(out), "--no-ccache", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "configuring in" in done.stderr


# --- bbv run --build ------------------------------------------------------------------------

TINY_RULE = """
# The target's image is the tiny guest (tests/tinyguest), which QEMU boots.
$(objtree)/images/$(image): $(srctree)/tinyguest.s $(objtree)/barebox
\t@mkdir -p $(dir $@)
\t@echo "  AS      tinyguest"
\t@$(CROSS_COMPILE)as -o $(objtree)/tinyguest.o $<
\t@$(CROSS_COMPILE)ld -Ttext=0x40010000 -o $(objtree)/tinyguest.elf $(objtree)/tinyguest.o
\t@$(CROSS_COMPILE)objcopy -O binary $(objtree)/tinyguest.elf $@
"""


@pytest.fixture
def tiny_tree(tree) -> Path:
    shutil.copy(TINYGUEST, tree / "tinyguest.s")
    with (tree / "Makefile").open("a") as fh:
        fh.write(TINY_RULE)
    return tree


def set_banner(tree: Path, old: str, new: str) -> None:
    source = tree / "tinyguest.s"
    text = source.read_text()
    assert old in text
    source.write_text(text.replace(old, new))


@need("qemu-system-arm", "arm-linux-gnueabihf-as")
def test_run_build_rebuilds_after_an_edit_and_boots_the_new_image(tiny_tree, tmp_path):
    first = bbv("build", "vexpress", cwd=tiny_tree)
    assert first.returncode == 0, first.stderr
    set_banner(tiny_tree, "2099.01.0-bbv-tiny", "2099.02.0-edited")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = bbv("run", "-t", "vexpress", "--build", "--exec", "echo hi", "--expect", "^hi$",
               cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "incremental build in" in done.stderr and "built barebox-dt-2nd.img in" in done.stderr
    log = (tiny_tree / "build-vexpress" / "bbv-build.log").read_text()
    assert "AS      tinyguest" in log and "CC      common" not in log
    image = tiny_tree / "build-vexpress" / "images" / "barebox-dt-2nd.img"
    assert b"2099.02.0-edited" in image.read_bytes()
    # The boot log of the new image: expectations without --exec match it.
    booted = bbv("run", "-t", "vexpress", "--build", "--expect", "barebox 2099.02.0-edited",
                 cwd=elsewhere)
    assert booted.returncode == 0, booted.stdout + booted.stderr


@need("qemu-system-arm", "arm-linux-gnueabihf-as")
def test_run_build_failure_stops_before_qemu_with_the_error(tiny_tree, tmp_path):
    assert bbv("build", "vexpress", cwd=tiny_tree).returncode == 0
    set_banner(tiny_tree, "        .syntax unified", "        .syntax unified\n        bogus r0")
    done = bbv("run", "-t", "vexpress", "--build", "--exec", "echo hi", cwd=tiny_tree)
    assert done.returncode == 1
    assert "Error: bad instruction `bogus r0'" in done.stderr
    assert "make failed (exit status 2)" in done.stderr and "booting" not in done.stderr


def test_run_build_without_a_recorded_build_or_tree_is_one_line(tmp_path):
    done = bbv("run", "-t", "vexpress", "--build", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("bbv: error: --build: no recorded build of target 'vexpress' "
                                  f"and {tmp_path} is not a barebox source tree")


def test_run_build_options_that_need_build(tmp_path):
    done = bbv("run", "-t", "vexpress", "--src", str(tmp_path), "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and "--src belongs to --build" in done.stderr
    done = bbv("run", "-t", "vexpress", "--build", "--image", "x", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and "--image and --build exclude each other" in done.stderr


def test_run_build_with_src_builds_there_then_prints_the_command(tree, tmp_path):
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("not installed: qemu-system-arm")
    done = bbv("run", "-t", "vexpress", "--build", "--src", str(tree), "--no-ccache",
               "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    image = tree / "build-vexpress" / "images" / "barebox-dt-2nd.img"
    assert f"-kernel {image}" in done.stdout
    assert built_images(tree / "build-vexpress") == {"barebox-dt-2nd.img"}


@need("ccache")
def test_incremental_build_keeps_a_directory_built_without_ccache_without_it(tree):
    assert bbv("build", "vexpress", "--no-ccache", cwd=tree).returncode == 0
    done = bbv("build", "vexpress", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "ccache: not used here: this directory was built without it" in done.stderr
    assert "through ccache" not in done.stderr
    log = (tree / "build-vexpress" / "bbv-build.log").read_text()
    assert " CROSS_COMPILE=arm-linux-gnueabihf- " in log and "  CC " not in log
    done = bbv("build", "vexpress", "--clean", cwd=tree)
    assert "through ccache" in done.stderr and record(tree / "build-vexpress")["ccache"]
