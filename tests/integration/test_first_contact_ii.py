"""Issue 22 (first contact II): what a new user hit in 190 bad inputs, one test per row of the
issue's table, each driving the real command. Bad input: one line on stderr, no traceback,
nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import BBV, ROOT, bbv, error_line, need, one_line_error, snapshot

MINI = ROOT / "tests" / "fixtures" / "minibarebox"
RISCV = "riscv64-linux-gnu-"


@pytest.fixture
def images(tmp_path) -> Path:
    """A directory with the images `bbv run` finds for vexpress and malta (zeros: no boot)."""
    (tmp_path / "images").mkdir()
    for name in ("barebox-dt-2nd.img", "barebox-qemu-malta.img"):
        (tmp_path / "images" / name).write_bytes(bytes(64 * 1024))
    return tmp_path


# --- 2: places bbv cannot write ---------------------------------------------------------------

NEEDS = ("import importlib.metadata as m, sys, barebox_virtio_cli.cli, rich, pexpect, yaml; "
         "sys.exit(tuple(int(x) for x in m.version('click').split('.')[:2]) < (8, 2))")


def _nobody() -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def unprivileged():
    """Run bbv as the user nobody (CI runs as root, for whom every file is writable): a
    function like conftest's bbv, and a directory nobody can read but not write."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or _nobody() is None:
        pytest.skip("needs root, setpriv and a user 'nobody' to run bbv unprivileged")
    base = Path(tempfile.mkdtemp(prefix="bbv-nobody-"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    uid, gid = _nobody()
    os.chown(home, uid, gid)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("CONFIG", "CACHE", "DATA", "STATE"):
        env[f"BBV_{name}_DIR"] = str(home / name.lower())
    env["BBV_RUNTIME_DIR"] = str(home / "run")
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    # A Python nobody can run with bbv's dependencies: this one, unless it lives where nobody
    # cannot read (pyenv under /root); $BBV_TEST_NOBODY_PYTHON names another (a venv).
    python = os.environ.get("BBV_TEST_NOBODY_PYTHON", BBV[0])
    probe = subprocess.run([*prefix, python, "-c", NEEDS], env=env, capture_output=True,
                           text=True, cwd=base)
    if probe.returncode != 0:
        shutil.rmtree(base)
        pytest.skip(f"nobody cannot run bbv with {python} (set $BBV_TEST_NOBODY_PYTHON to a "
                    f"Python nobody can use): {probe.stderr.strip()[-160:]}")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, python, *BBV[1:], *args], env=env, capture_output=True,
                              text=True, cwd=base, timeout=120)

    readonly = base / "ro"
    readonly.mkdir(mode=0o755)
    yield run, base, readonly
    shutil.rmtree(base)


def test_image_create_in_a_directory_not_writable(unprivileged):
    run, _, readonly = unprivileged
    one_line_error(run("image", "create", str(readonly / "x.img"), "--size", "1M"), 1,
                   f"cannot write {readonly / 'x.img'}", "Permission denied")
    assert not list(readonly.iterdir())


def test_export_into_a_directory_not_writable(unprivileged, images):
    run, base, readonly = unprivileged
    image = base / "b.img"
    shutil.copy(images / "images" / "barebox-dt-2nd.img", image)
    one_line_error(run("export", "lava", "-t", "vexpress", "--image", str(image), "-o",
                       str(readonly / "job.yaml")), 1, "cannot write", "Permission denied")
    one_line_error(run("export", "lava", "-t", "vexpress", "--image", str(image), "-o",
                       str(readonly / "jobs") + "/"), 2, "cannot create the directory")
    assert not list(readonly.iterdir())


@need(f"{RISCV}gcc", "make")
def test_build_where_bbv_cannot_write(unprivileged):
    run, base, readonly = unprivileged
    tree = base / "barebox"
    shutil.copytree(MINI, tree)
    error_line(run("build", "riscv64", "--src", str(tree), "-O", str(readonly / "build")), 1,
               f"cannot build in {readonly / 'build'}", "Permission denied")
    # a build directory root made: its lock and record are root's
    rooted = base / "rooted"
    rooted.mkdir()
    (rooted / ".bbv-lock").write_text("1\n")
    (rooted / "bbv-build.json").write_text('{"target": "riscv64", "complete": false}')
    before = snapshot(rooted)
    error_line(run("build", "riscv64", "--src", str(tree), "-O", str(rooted)), 1,
               f"cannot build in {rooted}", "Permission denied")
    assert snapshot(rooted) == before


def test_image_create_in_proc_as_any_user(tmp_path):
    one_line_error(bbv("image", "create", "/proc/x.img", "--size", "1M"), 1,
                   "cannot write /proc/x.img")


# --- 4, 5, 12-14: values refused before anything starts ---------------------------------------

@pytest.mark.parametrize("value", ["inf", "1e10", "1e12"])
@pytest.mark.parametrize("command", [["run", "-t", "vexpress", "--exec", "version", "--dry-run",
                                      "--timeout"],
                                     ["quickstart", "--timeout"],
                                     ["console", "/tmp/x.sock", "--linger"]])
def test_absurd_durations_are_refused_with_the_limit(images, command, value):
    one_line_error(bbv(*command, value, cwd=images), 2, "at most 86400 seconds")


def test_console_wait_beyond_a_day_is_refused():
    one_line_error(bbv("console", "--wait", "1e12", "/tmp/x.sock"), 2, "more than 86400 seconds")


@pytest.mark.parametrize("option", ["--image", "--blk"])
def test_five_thousand_character_paths(images, option):
    long = "/tmp/" + "a" * 5000
    line = one_line_error(bbv("run", "-t", "vexpress", option, long, "--dry-run", cwd=images), 2,
                          option, "too long")
    assert len(line) < 400


def test_image_that_cannot_boot_is_refused_before_qemu(images):
    (images / "empty.img").write_bytes(b"")
    (images / "notes.txt").write_text("this is not barebox\n" * 100)
    for image, needle in (("/dev/null", "not a regular file"), ("empty.img", "is empty"),
                          ("notes.txt", "is a text file")):
        one_line_error(bbv("run", "-t", "vexpress", "--image", image, "--dry-run", cwd=images), 2,
                       needle)


# Images with barebox's headers as its sources lay them out (pbl_macros.h's mips_barebox_10h;
# the arm64 Image header of its dt-2nd images), made by the cross binutils tests/run.sh installs.
MIPS_HEAD = """.set noreorder
b 1f
nop
.org 0x10
.asciz "barebox"
.align 4
1: b 1b
nop
"""
ARM64_HEAD = """b 1f
.org 0x38
.ascii "ARM\\x64"
.asciz "barebox"
.align 4
1: b 1b
"""


def assembled(tmp: Path, prefix: str, name: str, source: str) -> tuple[Path, Path]:
    """The ELF object and the raw image (its .text) of source."""
    (tmp / f"{name}.s").write_text(source)
    obj, raw = tmp / f"{name}.o", tmp / f"{name}.img"
    subprocess.run([f"{prefix}as", "-o", str(obj), str(tmp / f"{name}.s")], check=True)
    subprocess.run([f"{prefix}objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)],
                   check=True)
    return obj, raw


@need("qemu-system-mips", "qemu-system-arm", "mips-linux-gnu-as", "aarch64-linux-gnu-as")
def test_image_of_another_architecture_is_refused_before_qemu(images):
    mips_elf, mips_img = assembled(images, "mips-linux-gnu-", "mips", MIPS_HEAD)
    _, arm64_img = assembled(images, "aarch64-linux-gnu-", "arm64", ARM64_HEAD)
    for target, image, what in (("vexpress", mips_img, "mips"),
                                ("vexpress", mips_elf, "mips"),
                                ("vexpress", arm64_img, "64-bit arm"),
                                ("malta", arm64_img, "64-bit arm")):
        done = bbv("run", "-t", target, "--image", str(image), "--dry-run", cwd=images)
        one_line_error(done, 2, f"--image {image}: is an image for {what} and target "
                       f"'{target}' is",
                       "-t TARGET")
    for target, image in (("malta", mips_img), ("malta", mips_elf),
                          ("vexpress", images / "images" / "barebox-dt-2nd.img")):  # unknown
        done = bbv("run", "-t", target, "--image", str(image), "--dry-run", cwd=images)
        assert done.returncode == 0, done.stderr


@need("qemu-system-mips", "qemu-system-arm")
def test_qemu_of_another_arch_gets_bbvs_hint(images):
    one_line_error(bbv("run", "-t", "vexpress", "--qemu", "qemu-system-mips", "--dry-run",
                       cwd=images), 2, "qemu-system-mips has no machine 'virt'", "qemu-system-arm")


@pytest.mark.parametrize("endpoint", ["99999", "tcp::70000", "tcp:localhost:0"])
def test_gdb_port_out_of_range(endpoint):
    one_line_error(bbv("gdb", "-t", "vexpress", endpoint), 2, "out of range", "1 to 65535")


@pytest.mark.parametrize(("args", "needle"), [
    (["console", "tcp:localhost:\u00b2"], "tcp:HOST:PORT"),
    (["run", "-t", "vexpress", "--net", "--port-forward", "\u00b2", "--dry-run"], "ports 1-65535"),
])
def test_superscript_digits_are_no_port(images, args, needle):
    one_line_error(bbv(*args, cwd=images), 2, needle)


# --- 6, 11: file names ------------------------------------------------------------------------

def test_non_utf8_names_are_accepted(images):
    name = b"disk\xff.img"
    os.close(os.open(os.path.join(bytes(images), name), os.O_CREAT | os.O_WRONLY))
    os.truncate(os.path.join(bytes(images), name), 1 << 20)
    done = subprocess.run([*BBV, "run", "-t", "vexpress", "--blk", name, "--console",
                           b"/tmp/c\xff.sock", "--dry-run"], cwd=images, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert name in done.stdout and b"/tmp/c\xff.sock" in done.stdout
    made = b"made\xff.img"
    done = subprocess.run([*BBV, "image", "create", made, "--size", "1M"], cwd=images,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(b"bbv: wrote made\xff.img") and b"Traceback" not in done.stderr
    assert os.path.getsize(os.path.join(bytes(images), made)) == 1 << 20


def test_image_create_prints_a_pasteable_command(tmp_path):
    done = bbv("image", "create", "my disk,1.img", "--size", "1M", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.rstrip().endswith("bbv run --blk 'my disk,1.img'"), done.stderr


# --- 7-10: options that did nothing, or advice that did not work ------------------------------

def test_export_makes_the_output_directory(images):
    done = bbv("export", "lava", "-t", "vexpress", "-t", "malta", "--exec", "version", "-o",
               "jobs/", cwd=images)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (images / "jobs").iterdir()) == ["malta.yaml", "vexpress.yaml"]
    assert "device_type: qemu" in (images / "jobs" / "malta.yaml").read_text()


def test_console_twice_is_refused(images):
    one_line_error(bbv("run", "-t", "vexpress", "--console", "a.sock", "--console", "b.sock",
                       "--dry-run", cwd=images), 2, "--console given 2 times", "one virtio console")


def test_dry_run_says_scripted_options_are_not_carried_out(images):
    done = bbv("run", "-t", "vexpress", "-n", "--exec", "version", "--expect", "foo",
               cwd=images)
    assert done.returncode == 0, done.stderr
    assert "bbv: warning: --dry-run only prints the QEMU command line; --exec, --expect are " \
           "not carried out" in done.stderr
    assert "qemu-system-arm" in done.stdout.splitlines()[0]


@need("qemu-system-mips")
def test_bootarg_advice_works_on_the_target(images):
    line = one_line_error(bbv("run", "-t", "malta", "--bootarg", "foo=bar", "-n", cwd=images), 2,
                          "--bootarg", "--exec")
    assert "--env" not in line
    done = bbv("run", "-t", "malta", "--env", "nv/x=1", "-n", cwd=images)
    assert done.returncode == 2  # the advice must not be what malta refuses


# --- bbv targets: what each boots, why the name, barebox's labgrid env ------------------------

def test_targets_one_line_each_says_what_it_boots():
    from barebox_virtio_cli.targets.catalog import load_catalog

    done = bbv("targets")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines()
            if line.startswith("│") and line.split()[1] != "name"}
    for t in load_catalog().targets.values():
        line = rows[t.name]
        for part in (f"-M {t.machine} -cpu {t.cpu}", f"{t.image} as -{t.load}", t.labgrid_env,
                     t.description, *t.defconfigs):
            assert part in line, (part, line)
    assert "test/arm/dt-2nd@multi_v7_defconfig.yaml" in rows["vexpress"]


# --- 15: the cursor after QEMU's last words on a raw terminal ---------------------------------

def test_qemu_messages_end_at_column_0_on_a_raw_terminal():
    """QEMU's 'terminating on signal 15' reaches the terminal through bbv while the terminal
    may still be raw (QEMU restores it at its exit): a bare LF there left the shell's next
    prompt at column ~104 after a SIGHUP. bbv ends QEMU's lines with CR LF on a terminal."""
    import pty
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)
    code = ("import io; from barebox_virtio_cli.qemu.machine import _relay_stderr; "
            "_relay_stderr(io.BytesIO(b'qemu-system-mips: terminating on signal 15\\n'), [])")
    subprocess.run([BBV[0], "-c", code], stderr=slave, check=True, timeout=30)
    os.close(slave)
    got = b""
    while not got.endswith(b"\n"):
        got += os.read(master, 1024)
    os.close(master)
    assert got == b"qemu-system-mips: terminating on signal 15\r\n"


# --- friction: the failed net boot before the prompt of a foreground boot ---------------------

@need("qemu-system-arm", "qemu-system-mips")
@pytest.mark.parametrize(("target", "image", "skip"), [
    ("vexpress", "barebox-dt-2nd.img", True), ("malta", "barebox-qemu-malta.img", False)])
def test_foreground_boot_says_how_to_skip_the_autoboot(images, target, image, skip):
    from console_helpers import Terminal

    term = Terminal(["run", "-t", target, "--image", str(images / "images" / image)],
                    cwd=images)
    try:
        said = term.read_until(b"a key stops the countdown").decode()
        rest = term.read_until(b"\n").decode()
        assert "runs its default boot (the network" in said
        assert ("--env nv/autoboot=abort" in rest) is skip  # malta has no fw_cfg for --env
    finally:
        term.type(b"\x01x")  # QEMU's Ctrl-A X
        assert term.wait() == 0


@pytest.mark.skipif(not os.environ.get("BBV_BAREBOX_IMAGE"), reason="BBV_BAREBOX_IMAGE not set")
def test_env_nv_autoboot_abort_gives_the_prompt_without_net_boot():
    done = bbv("run", "-t", "vexpress", "--image", os.environ["BBV_BAREBOX_IMAGE"], "--env",
               "nv/autoboot=abort", "--exec", "echo autoboot=${global.autoboot}", "--expect",
               "autoboot=abort")
    assert done.returncode == 0, done.stderr
    assert "Booting entry" not in done.stdout + done.stderr


# --- friction: tests/run.sh and a plain `pip install .` ----------------------------------------

def test_run_sh_keeps_a_plain_install(tmp_path):
    """tests/run.sh used to turn the README's `pip install .` into an editable install; it now
    says how bbv is installed and keeps a copy as it is (tests/install_kind.py decides)."""
    venv = tmp_path / "venv"
    subprocess.run([BBV[0], "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    kind = [python, str(ROOT / "tests" / "install_kind.py")]
    assert subprocess.run(kind, capture_output=True, text=True).stdout.strip() == "not installed"
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"pip install . failed here (offline?): {done.stderr.strip()[-200:]}")
    said = subprocess.run(kind, capture_output=True, text=True).stdout.strip()
    assert said.startswith("installed from a copy (kept;")
    extras = subprocess.run([*kind, "--extras"], capture_output=True, text=True).stdout.split()
    assert "pytest>=7" in extras and "ruff" in extras
    text = (ROOT / "tests" / "run.sh").read_text()
    assert f'"$install" = "{said}"' in text and 'export PYTHONPATH="$PWD' in text


# --- the sweep: bad input found by trying every option ----------------------------------------

LONG = "/tmp/" + "a" * 5000


@pytest.fixture
def sweep(images) -> Path:
    os.mkfifo(images / "fifo")
    (images / "text.txt").write_text("hello\n")
    return images


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["run", "-t", "vexpress", "--exec", "version", "--junit", "x" * 300 + ".xml"], 1,
     "File name too long"),
    (["image", "create", LONG, "--size", "1M"], 1, "File name too long"),
    (["export", "lava", "-t", "vexpress", "-o", LONG], 1, "File name too long"),
    (["build", "vexpress", "--src", "TREE", "-O", LONG], 1, "File name too long"),
    (["quickstart", "--workdir", "/proc/x"], 1, "/proc/x"),
    (["image", "create", "x.img", "--size", "1M", "--fat", "--add", "fifo"], 2,
     "not a regular file or a directory"),
    (["image", "create", "x.img", "--size", "1M", "--fat", "--add", "text.txt:" + "n" * 300],
     2, "at most 255 characters"),
    (["image", "create", "", "--size", "1M"], 2, "FILE '' is empty"),
    (["image", "create", "x.img", "--size", "9" * 23], 2, "more than 1024 TiB"),
    (["export", "lava", "-t", "vexpress", "-o", ""], 2, "-o '' is empty"),
    (["run", "-t", "vexpress", "-n", "--target", ""], 2, "--target '' is empty"),
    (["run", "-n", "--arch", ""], 2, "--arch '' is empty"),
    (["run", "-t", "vexpress", "-n", "--blk", "fifo"], 2, "not a disk image"),
    (["run", "-t", "vexpress", "-n", "--blk", "/dev/null"], 2, "not a disk image"),
    (["run", "-t", "vexpress", "-n", "--env", "a=@fifo"], 2, "not a regular file"),
    (["run", "-t", "vexpress", "-n", "--firmware", "fifo"], 2, "not a regular file"),
    (["run", "-t", "vexpress", "-n", "--dump-dtb", ""], 2, "--dump-dtb '' is empty"),
    (["run", "-t", "vexpress", "-n", "--console-log", ""], 2, "--console-log '' is empty"),
    (["run", "-t", "vexpress", "-n", "--no-ccache"], 2, "--no-ccache belongs to --build"),
    (["build", "vexpress", "--src", "TREE", "--cross-compile", ""], 2,
     "--cross-compile '' is empty"),
    (["test", "--src", "TREE", "vexpress", "-j", "0"], 2, "give a whole number of at least 1"),
])
def test_sweep_bad_input_is_one_line_and_writes_nothing(sweep, args, code, needle):
    tree = sweep / "tree"
    shutil.copytree(MINI, tree)
    before = sorted(str(p.relative_to(sweep)) for p in sweep.rglob("*"))
    done = bbv(*[str(tree) if a == "TREE" else a for a in args], cwd=sweep, timeout=60)
    error_line(done, code, needle)
    assert sorted(str(p.relative_to(sweep)) for p in sweep.rglob("*")) == before


# --- the sweep on bbv bisect ------------------------------------------------------------------

@pytest.fixture
def history(tmp_path) -> Path:
    """The miniature tree as a git checkout with two commits."""
    if shutil.which("git") is None:
        pytest.skip("not installed: git")
    repo = tmp_path / "barebox"
    shutil.copytree(MINI, repo)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for argv in (["init", "-q"], ["add", "."], ["commit", "-qm", "one"],
                 ["commit", "-q", "--allow-empty", "-m", "two"]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True)
    return repo


@pytest.mark.parametrize(("args", "needle"), [
    (["--good", "HEAD", "--bad", "HEAD~1", "--exec", "version"], "is not an ancestor of --bad"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--", "/nonexistent/check"], "no such program"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--exec", "v", "--repeat", "99999999999"],
     "at most 100"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--exec", "v", "-j", "99999"], "at most 4096"),
])
def test_bisect_refuses_before_building(history, args, needle):
    done = bbv("bisect", "-t", "vexpress", "--src", str(history), *args, cwd=history,
               timeout=60)
    error_line(done, 2, needle)
    assert not (history / "build-vexpress").exists()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=history, capture_output=True,
                          text=True).stdout == ""


# --- the sweep on bbv lava and mirror URLs ----------------------------------------------------

@pytest.mark.parametrize(("url", "needle"), [
    ("http://h:99999", "has an invalid port"), ("http://h:0/", "has an invalid port"),
    ("https://[::1", "is not a valid URL"), ("http://a b/", "contains spaces")])
def test_lava_url_that_is_no_url(url, needle):
    one_line_error(bbv("lava", "wait", "--url", url, "--token", "x", "1", timeout=60), 2, "--url",
                   needle)


def test_mirror_with_an_unclosed_bracket():
    one_line_error(bbv("toolchain", "fetch", "arm", "--mirror", "https://[::1"), 2, "--mirror",
                   "is not a valid URL")
