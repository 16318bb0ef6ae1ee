"""Issue 14: what a new user meets first, with hostile input too. Each bad value is one line
on stderr, exit 2, no traceback; piped output keeps whole values; help texts are whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BBV, ROOT, bbv, one_line_error

from barebox_virtio_cli.commands._options import Number
from barebox_virtio_cli.errors import UsageError
from barebox_virtio_cli.util import validate


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "barebox-qemu-malta.img").write_bytes(bytes(64 * 1024))
    (tmp_path / "images" / "barebox-dt-2nd.img").write_bytes(bytes(64 * 1024))
    for disk in ("a.img", "b.img"):
        (tmp_path / disk).write_bytes(bytes(1 << 20))
    return tmp_path


# --- URLs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["example.com/x", "file:///tmp/x", "ftp://x/y", "http://",
                                 "::::", "http://a b/", "", "https://host:99999/"])
def test_bad_mirror_urls_are_refused(url):
    with pytest.raises(UsageError, match="--mirror"):
        validate.check_mirror_url(url, "--mirror")


def test_good_mirror_url_loses_its_slash():
    assert validate.check_mirror_url("https://m.example/pub/", "--mirror") == \
        "https://m.example/pub"
    assert validate.check_mirror_url("http://127.0.0.1:8080", "x") == "http://127.0.0.1:8080"


@pytest.mark.parametrize("url", ["example.com/x", "file:///tmp/x", "ftp://x/y", "http://a b/"])
def test_toolchain_fetch_mirror_option_one_line(url):
    one_line_error(bbv("toolchain", "fetch", "arm", "--mirror", url), 2, "--mirror")


def test_toolchain_mirror_env_one_line():
    env = {"BBV_TOOLCHAIN_MIRROR": "ftp://example.org/x"}
    one_line_error(bbv("toolchain", "fetch", "arm", env=env), 2, "$BBV_TOOLCHAIN_MIRROR", "ftp")


def test_quickstart_mirror_env_checked_before_any_step(tmp_path):
    env = {"BBV_BAREBOX_MIRROR": "example.org/barebox"}
    result = bbv("quickstart", "--workdir", str(tmp_path / "qs"), env=env)
    one_line_error(result, 2, "$BBV_BAREBOX_MIRROR", "no scheme")
    assert not (tmp_path / "qs").exists()


# --- sizes and numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["99999999T", "0", "-5", "8Q", "1P", "", "1.5M"])
def test_absurd_image_sizes_one_line(tmp_path, size):
    one_line_error(bbv("image", "create", str(tmp_path / "x.img"), "--size", size), 2, "--size")
    assert not list(tmp_path.iterdir())


def test_image_larger_than_filesystem(tmp_path):
    total = os.statvfs(tmp_path).f_blocks * os.statvfs(tmp_path).f_frsize
    size = f"{(total >> 20) + 1024}M"
    one_line_error(bbv("image", "create", str(tmp_path / "x.img"), "--size", size), 2,
                   "larger than")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("text", "want"), [("512M", "512M"), ("512m", "512M"), ("1G", "1G"),
                                             ("1.5G", "1536M"), ("256", "256M"),
                                             ("2048M", "2G"), ("1GiB", "1G")])
def test_parse_memory(text, want):
    assert validate.parse_memory(text) == want


@pytest.mark.parametrize("text", ["lots", "0", "-1", "99999999T", "1.3M", "", "512X"])
def test_parse_memory_refuses(text):
    with pytest.raises(UsageError, match="--memory"):
        validate.parse_memory(text)


RUN_BAD = [
    (["--memory", "lots"], "--memory"),
    (["--memory", "0"], "--memory"),
    (["--cpu", ""], "--cpu"),
    (["--cpu", "a b"], "--cpu"),
    (["--cpu", "nosuchcpu"], "no such CPU model"),
    (["--cpu", "24kx"], "did you mean 24Kf"),
    (["--machine", "nosuchmachine"], "--machine"),
    (["--machine", ""], "--machine"),
    (["--net", "--port-forward", "99999"], "ports 1-65535"),
    (["--net", "--port-forward", "tcp:0:-1"], "--port-forward"),
    (["--exec", "x", "--timeout", "-1"], "--timeout"),
    (["--exec", "x", "--timeout", "abc"], "--timeout"),
    (["--blk", "a.img", "--blk", "a.img"], "twice"),
]


@pytest.mark.parametrize(("args", "needle"), RUN_BAD)
def test_run_bad_values_one_line_before_qemu(tree, args, needle):
    if shutil.which("qemu-system-mips") is None:
        pytest.skip("qemu-system-mips not installed")
    line = one_line_error(bbv("run", "--arch", "mips", *args, "--dry-run", cwd=tree), 2, needle)
    assert "Invalid value" not in line or "give" in line


@pytest.mark.parametrize(("args", "needle"), [
    (["build", "-j", "0"], "whole number of at least 1"),
    (["build", "-j", "x"], "whole number"),
    (["console", "--linger", "-1", "/tmp/x"], "at least 0"),
    (["console", "--linger", "x", "/tmp/x"], "a number"),
    (["quickstart", "--timeout", "0"], "more than 0"),
    (["export", "lava", "--job-timeout", "0", "-o", "-"], "at least 1"),
    # durations have one parser: a day at most, never inf (which no wait can honour)
    (["lava", "wait", "--timeout", "inf", "1"], "at most 86400 seconds"),
    (["lava", "submit", "--timeout", "1e10", "-t", "vexpress"], "at most 86400 seconds"),
])
def test_number_options_read_as_sentences(args, needle):
    line = one_line_error(bbv(*args), 2, needle)
    assert "valid integer range" not in line and "float range" not in line


def test_number_type_describes_itself():
    assert Number(int, 1).describe() == "a whole number of at least 1"
    assert Number(float, 0, True, unit="seconds").describe() == \
        "a number of more than 0 seconds"


def test_catalog_field_error_grammar(tmp_path, monkeypatch):
    from barebox_virtio_cli.targets import catalog

    bad = (ROOT / "configs" / "vexpress.toml").read_text().replace("bits = 32", "bits = '32'")
    assert bad != (ROOT / "configs" / "vexpress.toml").read_text()
    (tmp_path / "vexpress.toml").write_text(bad)
    with pytest.raises(Exception, match="must be an integer") as info:
        catalog.load_file(tmp_path / "vexpress.toml")
    assert "a int" not in str(info.value)


# --- paths ------------------------------------------------------------------------------------

def test_missing_blk_says_how_to_make_it(tree):
    if shutil.which("qemu-system-mips") is None:
        pytest.skip("qemu-system-mips not installed")
    line = one_line_error(bbv("run", "--arch", "mips", "--blk", "new.img", "--dry-run",
                              cwd=tree), 2, "--blk new.img")
    assert "bbv image create new.img --size 8M" in line


def test_console_dev_null_is_a_usage_error():
    one_line_error(bbv("console", "/dev/null"), 2, "/dev/null")


# --- piped output -----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["targets"], ["toolchains"], ["doctor"]])
def test_piped_tables_keep_whole_values(command):
    result = bbv(*command, env={"COLUMNS": "80"})
    assert result.returncode in (0, 1), result.stderr
    assert "…" not in result.stdout
    if command == ["targets"]:
        line = next(line for line in result.stdout.splitlines() if "malta " in line
                    or "malta\t" in line or line.split()[:1] == ["malta"])
        assert "qemu-malta_defconfig" in line and "barebox-qemu-malta.img" in line


# --- help -------------------------------------------------------------------------------------

@pytest.mark.parametrize("group", ["toolchain", "export", "image"])
def test_group_help_has_whole_summaries(group):
    result = bbv(group, "--help")
    assert result.returncode == 0 and "..." not in result.stdout.split("Commands:")[1]


def test_quickstart_help_shows_real_workdir(tmp_path):
    env = {"BBV_DATA_DIR": str(tmp_path / "data")}
    out = bbv("quickstart", "--help", env=env).stdout
    assert "DATA_DIR" not in out
    assert str(tmp_path / "data" / "quickstart") in "".join(out.split())  # help wraps long words


def test_console_help_endpoint_required():
    usage = bbv("console", "--help").stdout.splitlines()[0]
    assert "ENDPOINT" in usage and "[ENDPOINT]" not in usage


def test_pytest_marker_names_the_variable_the_tests_use():
    text = (ROOT / "pyproject.toml").read_text()
    assert "BBV_BAREBOX_IMAGES" not in text and "BBV_BAREBOX_IMAGE" in text


# --- completion -------------------------------------------------------------------------------

def complete(words: str, shell: str = "bash") -> list[str]:
    args = words.split()
    incomplete = "" if words.endswith(" ") else args[-1]
    env = {**os.environ, "_BBV_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(args) - 1 if incomplete else len(args))}
    result = subprocess.run([sys.executable, "-c", "from barebox_virtio_cli.cli import main; "
                             "main()"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_complete_targets():
    assert "malta" in complete("bbv run --target ma")
    assert all(c.startswith("ma") for c in complete("bbv run --target ma"))
    assert "vexpress" in complete("bbv build ve")
    assert "riscv64" in complete("bbv doctor ri")


def test_complete_arches():
    got = complete("bbv run --arch mi")
    assert {"mips", "mipsel"} <= set(got)


def test_complete_defconfigs_from_the_tree(tmp_path):
    (tmp_path / "arch" / "arm" / "configs").mkdir(parents=True)
    (tmp_path / "arch" / "arm" / "configs" / "multi_v7_defconfig").write_text("")
    (tmp_path / "arch" / "arm" / "configs" / "multi_v8_defconfig").write_text("")
    got = complete(f"bbv build --src {tmp_path} --defconfig multi_v")
    assert set(got) == {"multi_v7_defconfig", "multi_v8_defconfig"}


def test_completion_script_sources():
    env = {**os.environ, "_BBV_COMPLETE": "bash_source"}
    result = subprocess.run([sys.executable, "-c", "from barebox_virtio_cli.cli import main; "
                             "main()"], capture_output=True, text=True, env=env, timeout=30)
    assert "complete -o nosort -F" in result.stdout


def test_readme_documents_completion():
    text = (ROOT / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_BBV_COMPLETE={shell}_source" in text


# --- QEMU's image locks, shared --exec rules, QEMU's own lines --------------------------------

needs_x86 = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                               reason="qemu-system-x86_64 not installed")


@pytest.fixture
def holder(tree):
    """Start a QEMU that holds tree/a.img (writing, or with -snapshot); stop it after."""
    started = []

    def start(snapshot: bool) -> subprocess.Popen:
        argv = ["qemu-system-x86_64", "-display", "none", "-S", "-nodefaults",
                "-drive", f"if=none,id=d,format=raw,file={tree / 'a.img'}",
                "-device", "virtio-blk-pci,drive=d"] + (["-snapshot"] if snapshot else [])
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        started.append(proc)
        inode = (tree / "a.img").stat().st_ino
        deadline = time.monotonic() + 20
        while f":{inode} " not in Path("/proc/locks").read_text():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "QEMU took no lock"
            time.sleep(0.05)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


@needs_x86
def test_snapshot_does_not_help_against_a_writer(tree, holder):
    holder(snapshot=False)
    line = one_line_error(bbv("run", "--arch", "mips", "--blk", "a.img", "--snapshot",
                              "--dry-run", cwd=tree), 2, "--blk", "a.img")
    assert "both with --snapshot" in line and "copy" in line
    line = one_line_error(bbv("run", "--arch", "mips", "--blk", "a.img", "--dry-run",
                              cwd=tree), 2, "in use by another QEMU")
    assert "add --snapshot to share" not in line


@needs_x86
def test_two_snapshot_boots_share_an_image(tree, holder):
    holder(snapshot=True)
    assert bbv("run", "--arch", "mips", "--blk", "a.img", "--snapshot", "--dry-run",
               cwd=tree).returncode == 0
    one_line_error(bbv("run", "--arch", "mips", "--blk", "a.img", "--dry-run", cwd=tree), 2,
                   "in use by another QEMU")


@needs_x86
def test_snapshot_check_agrees_with_qemu(tree, holder):
    """What bbv refuses, QEMU itself refuses: the second QEMU fails on the write lock."""
    holder(snapshot=False)
    second = subprocess.run(["qemu-system-x86_64", "-display", "none", "-S", "-nodefaults",
                             "-snapshot", "-drive",
                             f"if=none,id=d,format=raw,file={tree / 'a.img'}",
                             "-device", "virtio-blk-pci,drive=d"],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0 and 'write" lock' in second.stderr


@needs_x86
def test_export_does_not_refuse_an_image_a_local_qemu_holds(tree, holder):
    holder(snapshot=False)
    result = bbv("export", "lava", "--arch", "mips", "--blk", "a.img", "-o", "-", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert "a.img" in result.stdout


def test_export_lava_exec_refuses_a_comment(tree):
    if shutil.which("qemu-system-mips") is None:
        pytest.skip("qemu-system-mips not installed")
    one_line_error(bbv("export", "lava", "--arch", "mips", "--exec", "echo hi # note", "-o",
                       "-", cwd=tree), 2, "--exec", "'#'")


def test_split_qemu_lines():
    from barebox_virtio_cli.session.report import split_qemu_lines

    lock = ['qemu-system-arm: -drive x: Failed to get "write" lock',
            "Is another process using the image [a.img]?"]
    assert split_qemu_lines(lock) == (lock, [])
    mixed = ["barebox 2026.06", "qemu-system-arm: terminating on signal 15", "barebox@x:/ "]
    assert split_qemu_lines(mixed) == ([mixed[1]], [mixed[0], mixed[2]])


def test_scripted_boot_labels_qemus_own_errors(tree):
    if shutil.which("qemu-system-mips") is None:
        pytest.skip("qemu-system-mips not installed")
    result = bbv("run", "--arch", "mips", "--exec", "ls", "--timeout", "5",
                 "--qemu-arg=-bogus-option", cwd=tree)
    assert result.returncode == 1
    assert "QEMU said:" in result.stderr and "-bogus-option" in result.stderr
    assert "last lines barebox printed" not in result.stderr


# --- two builds at once ---------------------------------------------------------------------

FIXTURE = ROOT / "tests" / "fixtures" / "minibarebox"


@pytest.mark.skipif(shutil.which("arm-linux-gnueabihf-gcc") is None or
                    shutil.which("make") is None, reason="make or the ARM cross gcc missing")
def test_second_build_sees_the_first_one_running_not_a_foreign_dir(tmp_path):
    """The first build of a directory holds its lock before it has written any record: a
    second build must say so, not call the directory foreign."""
    import fcntl

    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    out = src / "build-vexpress"
    out.mkdir()
    (out / "bbv-build.log").write_text("")
    (out / ".config").write_text("# half written\n")
    with open(out / ".bbv-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242\n")
        lock.flush()
        done = bbv("build", "vexpress", cwd=src)
    assert done.returncode == 1, done.stderr
    assert f"another build is running in {out} (pid 4242)" in done.stderr
    assert "not a barebox build directory" not in done.stderr


@pytest.mark.skipif(shutil.which("arm-linux-gnueabihf-gcc") is None or
                    shutil.which("make") is None, reason="make or the ARM cross gcc missing")
def test_two_builds_started_together(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    procs = [subprocess.Popen(BBV + ["build", "vexpress"], cwd=src, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or "another build is running" in err, err


# --- quickstart -------------------------------------------------------------------------------

def test_quickstart_src_that_is_not_a_tree_says_so(tmp_path):
    (tmp_path / "src").mkdir()
    line = one_line_error(bbv("quickstart", "--src", str(tmp_path / "src"), "--workdir",
                              str(tmp_path / "w")), 2,
                          f"--src {tmp_path / 'src'} is not a barebox source tree")
    assert "pass --src DIR" not in line


def test_stale_reason_and_changed_since(tmp_path):
    from dataclasses import replace

    from barebox_virtio_cli.build.record import BuildRecord
    from barebox_virtio_cli.quickstart.uptodate import changed_since, stale_reason

    image = tmp_path / "img"
    image.write_bytes(b"x")
    record = BuildRecord(target="vexpress", defconfig="multi_v7_defconfig", toolchain="arm-",
                         src=tmp_path, image=image)
    args = ("vexpress", "multi_v7_defconfig", "arm-", tmp_path, image)
    assert stale_reason(record, *args) is None
    assert "toolchain" in stale_reason(replace(record, toolchain="x-"), *args)
    assert stale_reason(None, *args) == "no earlier build"
    assert "kconfig" in stale_reason(record, *args, ("CONFIG_VIRTIO_PCI=y",))
    assert stale_reason(replace(record, kconfig=["CONFIG_VIRTIO_PCI=y"]), *args,
                        ("CONFIG_VIRTIO_PCI=y",)) is None
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "build-x").mkdir()
    (tmp_path / "stamp").write_text("")
    since = (tmp_path / "stamp").stat().st_mtime_ns  # the filesystem's clock, not time.time
    time.sleep(0.05)
    (tmp_path / "build-x" / "new.o").write_text("")  # output dirs do not count
    assert changed_since(tmp_path, since, set()) is None
    (tmp_path / "disk-fat.img").write_text("")  # quickstart's own files, when work is the tree
    assert changed_since(tmp_path, since, {tmp_path / "disk-fat.img"}) is None
    (tmp_path / "a" / "b" / "c.c").write_text("")
    assert changed_since(tmp_path, since, {tmp_path / "disk-fat.img"}) == \
        tmp_path / "a" / "b" / "c.c"


@pytest.mark.qemu
@pytest.mark.skipif(any(shutil.which(t) is None for t in
                        ("make", "qemu-system-arm", "arm-linux-gnueabihf-gcc", "mcopy",
                         "mkfs.vfat")), reason="quickstart's tools missing")
def test_quickstart_rerun_skips_what_is_up_to_date(tmp_path):
    import test_quickstart as tq

    src = tmp_path / "src"
    shutil.copytree(tq.FIXTURE, src)
    shutil.copy(tq.TINYGUEST, src / "tinyguest.s")
    with (src / "Makefile").open("a") as fh:
        fh.write(tq.TINY_RULE)
    work = tmp_path / "w"

    def quickstart() -> str:
        done = bbv("quickstart", "--src", str(src), "--workdir", str(work), "--timeout", "2",
                   timeout=300)
        tq.assert_boots_tiny_guest_then_fails_at_the_virtio_console(done)
        return done.stderr

    first = quickstart()
    step3 = first.split("[3/6] find a toolchain\n")[1].splitlines()[0].strip()
    assert f"bbv: toolchain: {step3}" in first  # step 4 names the compiler step 3 found
    assert "from --cross-compile" not in first
    fat = (work / "disk-fat.img").read_bytes()

    second = quickstart()
    assert "is up to date (nothing in" in second and "not rebuilt" in second
    assert "configuring" not in second and "incremental build" not in second
    assert "disk-fat.img kept: unchanged since the last run" in second
    assert (work / "disk-fat.img").read_bytes() == fat

    (src / "common" / "barebox.c").write_text((src / "common" / "barebox.c").read_text())
    third = quickstart()
    assert f"building: {src / 'common' / 'barebox.c'} changed" in third
    assert "incremental build" in third


def test_toolchain_version_is_checked_before_any_download():
    one_line_error(bbv("toolchain", "fetch", "arm", "--version", "garbage", "--mirror",
                       "http://127.0.0.1:9"), 2, "--version 'garbage'")


@pytest.mark.parametrize("args", [["--wait", "-1", "/tmp/x"], ["--wait=-1", "/tmp/x"],
                                  ["/tmp/x", "--wait", "-1"]])
def test_negative_number_for_optional_value_is_named(args):
    line = one_line_error(bbv("console", *args), 2, "-1")
    assert "No such option" not in line
    assert line.startswith("bbv: error: --wait '-1' is a negative number; give 0 or more")


@pytest.mark.parametrize(("args", "needle"), [
    (["--image", ""], "--image"), (["--blk", ""], "--blk"), (["--fs", ""], "--fs"),
    (["--firmware", ""], "--firmware"), (["--console="], None),
])
def test_empty_paths_are_refused(tree, args, needle):
    if shutil.which("qemu-system-mips") is None:
        pytest.skip("qemu-system-mips not installed")
    result = bbv("run", "--arch", "mips", *args, "--dry-run", cwd=tree)
    if needle is None:  # --console without a path: the default socket path
        assert result.returncode == 0, result.stderr
        return
    one_line_error(result, 2, f"{needle} ''", "empty")


def test_absurd_job_count():
    one_line_error(bbv("build", "-j", "99999999999999999999"), 2, "at most")


def test_toolchain_mirror_from_the_config_file_one_line():
    config = Path(os.environ["BBV_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text('[toolchain]\nmirror = "mirror.example/bin"\n')
    env = {"BBV_TOOLCHAIN_MIRROR": None}
    one_line_error(bbv("toolchain", "fetch", "arm", env=env), 2, "[toolchain] mirror",
                   "no scheme")


@pytest.mark.parametrize("url", ["example.com/x", "ftp://x/y", "http:///x", "http://a b/"])
def test_downloader_turns_requests_url_errors_into_one_line(url):
    from barebox_virtio_cli.errors import BbvError
    from barebox_virtio_cli.util.download import Downloader

    with pytest.raises(BbvError, match="not a URL bbv can download from"):
        Downloader("offline?", attempts=1, backoff=0).text(url)
