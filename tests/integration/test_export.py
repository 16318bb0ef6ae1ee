"""bbv export: labgrid files loaded with labgrid's own parser (and, with a real barebox, booted
by labgrid), LAVA jobs validated with LAVA's own schema (Debian package lava-common)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import TESTS, bbv, need, one_line_error
from process_helpers import CROSS, TINYGUEST, assemble

from barebox_virtio_cli.export.jobs import prefix_ids

# What a barebox tree's test/strategy.py does for labgrid: register BareboxTestStrategy.
FAKE_STRATEGY = textwrap.dedent('''\
    import attr
    from labgrid import target_factory
    from labgrid.strategy import Strategy

    @target_factory.reg_driver
    @attr.s(eq=False)
    class BareboxTestStrategy(Strategy):
        bindings = {"power": "PowerProtocol", "console": "ConsoleProtocol",
                    "barebox": "BareboxDriver"}
''')
LAVA_PYTHON = "/usr/bin/python3"  # lava-common is a Debian package for the system Python




@pytest.fixture
def setup(tmp_path):
    """A stand-in barebox image and two disks: export only needs the files to exist."""
    (tmp_path / "barebox-dt-2nd.img").write_bytes(b"\0" * 4096)
    for name in ("a.img", "b.img"):
        (tmp_path / name).write_bytes(b"\0" * (1 << 20))
    return tmp_path


DEVICES = ["--blk", "a.img", "--blk", "b.img", "--rng", "--net", "--env", "nv/x=1"]


def run_groups(cwd: Path, *args: str) -> list[list[str]]:
    done = bbv("run", "--dry-run", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line.rstrip("\\")) for line in done.stdout.splitlines()]


def device_args(argv: list[str]) -> list[list[str]]:
    """The virtio-related option pairs of a QEMU argv, in order."""
    keep = {"-device", "-drive", "-netdev", "-chardev", "-fsdev", "-fw_cfg", "-global"}
    return [[a, b] for a, b in zip(argv, argv[1:], strict=False) if a in keep]


@need("qemu-system-arm")
def test_labgrid_file_loads_and_carries_bbv_runs_devices(setup):
    image = str(setup / "barebox-dt-2nd.img")
    done = bbv("export", "labgrid", "-t", "vexpress", "--image", image, *DEVICES,
               "--no-strategy", "-o", "env.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    from labgrid import Environment

    target = Environment(str(setup / "env.yaml")).get_target("main")
    qemu = target.get_driver("QEMUDriver", activate=False)
    assert (qemu.qemu_bin, qemu.machine, qemu.cpu, qemu.memory, qemu.kernel) == \
        ("qemu-system-arm", "virt", "cortex-a7", "256M", "barebox-dt-2nd.img")
    labgrid_argv = qemu.get_qemu_base_args()  # what labgrid itself would start
    assert labgrid_argv[:3] == [shutil.which("qemu-system-arm"), "-kernel", image]
    expected = [prefix_ids(g) for g in device_args(
        [a for g in run_groups(setup, "-t", "vexpress", "--image", image, *DEVICES) for a in g])]
    assert device_args(labgrid_argv) == expected
    assert target.get_driver("BareboxDriver", activate=False).prompt == "barebox@[^:]+:[^ ]+ "


@need("qemu-system-x86_64", "qemu-system-mips")
@pytest.mark.parametrize(("target", "image", "fields"), [
    ("x86-efi", "barebox.efi", {"kernel": "barebox.efi", "bios": "OVMF.fd"}),
    ("malta", "barebox-qemu-malta.img", {"bios": "barebox-qemu-malta.img", "kernel": None}),
])
def test_labgrid_firmware_and_bios_loaded_targets(setup, target, image, fields):
    (setup / image).write_bytes(b"\0" * 4096)
    (setup / "test").mkdir()
    (setup / "test" / "strategy.py").write_text(FAKE_STRATEGY)
    done = bbv("export", "labgrid", "-t", target, "--image", image, "--blk", "a.img",
               "-o", "env.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load((setup / "env.yaml").read_text())
    assert data["imports"] == [str(setup / "test" / "strategy.py")]
    # no test/*/*.yaml in this tree: the target file's features follow the transport
    fallback = {"x86-efi": ["pci"], "malta": ["testfs"]}[target]
    assert data["targets"]["main"]["features"] == ["virtio-pci", *fallback]
    assert "target file" in done.stderr
    driver = data["targets"]["main"]["drivers"]["QEMUDriver"]
    assert {k: driver.get(k) for k in fields} == fields
    assert all(Path(p).is_file() for p in data["images"].values())
    assert "virtio-blk-pci,drive=bbvhd0" in driver["extra_args"]


def test_labgrid_needs_a_barebox_tree_or_no_strategy(setup):
    done = bbv("export", "labgrid", "--image", "barebox-dt-2nd.img", "-o", "e.yaml", cwd=setup)
    assert done.returncode == 2
    assert "no test/strategy.py" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (setup / "e.yaml").exists()


@need("qemu-system-arm")
def test_existing_output_is_kept_without_force(setup):
    (setup / "env.yaml").write_text("mine")
    args = ["export", "labgrid", "--image", "barebox-dt-2nd.img", "--no-strategy", "-o",
            "env.yaml"]
    done = bbv(*args, cwd=setup)
    assert done.returncode == 2 and "exists; add --force" in done.stderr
    assert (setup / "env.yaml").read_text() == "mine"
    assert bbv(*args, "--force", cwd=setup).returncode == 0
    assert "QEMUDriver" in (setup / "env.yaml").read_text()


def lava_validate(path: Path) -> subprocess.CompletedProcess:
    code = ("import sys, yaml\nfrom lava_common.schemas import validate\n"
            "validate(yaml.safe_load(open(sys.argv[1])), strict=True)\n")
    return subprocess.run([LAVA_PYTHON, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=60)


def _have_lava() -> bool:
    try:
        return subprocess.run([LAVA_PYTHON, "-c", "import lava_common.schemas"],
                              capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


needs_lava = pytest.mark.skipif(not _have_lava(), reason="Debian package lava-common missing")


@needs_lava
@need("qemu-system-arm", "qemu-system-mips", "qemu-system-x86_64")
@pytest.mark.parametrize(("target", "image", "arch"), [
    ("vexpress", "barebox-dt-2nd.img", "arm"), ("malta", "barebox-qemu-malta.img", "mips"),
    ("x86-efi", "barebox.efi", "x86_64")])
def test_lava_job_passes_lavas_schema_and_carries_the_devices(setup, target, image, arch):
    (setup / image).write_bytes(b"\0" * 4096)
    args = ["-t", target, "--image", image, "--blk", "a.img", "--blk", "b.img", "--rng",
            "--console", str(setup / "c.sock")]
    done = bbv("export", "lava", *args, "--exec", "ls /dev", "--exec", "devinfo",
               "-o", "job.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    checked = lava_validate(setup / "job.yaml")
    assert checked.returncode == 0, checked.stderr
    job = yaml.safe_load((setup / "job.yaml").read_text())
    assert job["context"]["arch"] == arch and job["context"]["no_kvm"] is True
    deploy, boot, test = (next(iter(a.values())) for a in job["actions"])
    assert boot["prompts"] == ["barebox@[^:]+:[^ ]+ "]
    assert boot["parameters"] == {"kernel-start-message": ""}  # barebox prints no "Linux version"
    # Enter at the countdown, as bbv run's key: no default boot (net boot, EFI disk0) is tried.
    assert boot["auto_login"] == {"login_prompt": "to stop autoboot|barebox@[^:]+:[^ ]+ ",
                                  "username": ""}
    steps = test["interactive"][0]["script"]
    assert [s["command"] for s in steps] == ["ls /dev; echo bbv-rc-lava0001=$?",
                                             "devinfo; echo bbv-rc-lava0002=$?"]
    assert [s["successes"] for s in steps] == [[{"message": r"bbv-rc-lava0001=0\s"}],
                                               [{"message": r"bbv-rc-lava0002=0\s"}]]
    # Images become file:// URLs that LAVA downloads and substitutes into image_arg.
    argv = []
    for key, entry in deploy["images"].items():
        assert entry["url"].startswith("file:///") and Path(entry["url"][7:]).is_file()
        assert "{" + key + "}" in entry["image_arg"]
        argv += shlex.split(entry["image_arg"].replace("{" + key + "}", entry["url"][7:]))
    for option in job["context"]["extra_options"]:
        argv += shlex.split(option)
    expected = device_args([a for g in run_groups(setup, *args) for a in g])
    # LAVA cannot reach a socket on this machine: the console chardev becomes a pty there.
    expected = [["-chardev", "pty,id=con0"] if g[0] == "-chardev" else g for g in expected]
    assert sorted(device_args(argv)) == sorted(expected)
    assert [g for g in device_args(argv) if g[0] == "-device"] == \
        [g for g in expected if g[0] == "-device"]  # device order (mmio numbering) kept


@need("qemu-system-arm", "qemu-system-mips")
def test_export_writes_standard_output_without_o(setup):
    (setup / "barebox-qemu-malta.img").write_bytes(b"\0" * 4096)
    for kind, extra in (("lava", []), ("labgrid", ["--no-strategy"])):
        done = bbv("export", kind, "--image", "barebox-dt-2nd.img", *extra, cwd=setup)
        assert done.returncode == 0, done.stderr
        assert yaml.safe_load(done.stdout)  # the file itself, and nothing written here
        assert done.stderr == "" and sorted(p.name for p in setup.iterdir()) == \
            ["a.img", "b.img", "barebox-dt-2nd.img", "barebox-qemu-malta.img"]


@need("qemu-system-arm", "qemu-system-mips")
def test_several_targets_give_one_job_each_in_a_directory(setup):
    # Each target's image is the one its last `bbv build` recorded (here: a build dir each).
    for name, image in (("vexpress", "barebox-dt-2nd.img"), ("malta", "barebox-qemu-malta.img")):
        (setup / f"build-{name}" / "images").mkdir(parents=True)
        (setup / f"build-{name}" / "images" / image).write_bytes(b"\0" * 4096)
        (setup / f"build-{name}" / "bbv-build.json").write_text(json.dumps(
            {"target": name, "image": str(setup / f"build-{name}" / "images" / image)}))
    (setup / "jobs").mkdir()
    (setup / "jobs" / "malta.yaml").write_text("mine")
    args = ["export", "lava", "-t", "vexpress", "-t", "malta", "--rng", "--exec", "version",
            "--job-name", "nightly"]
    done = bbv(*args, "-o", "jobs/", cwd=setup)
    assert done.returncode == 2 and "jobs/malta.yaml exists; add --force" in done.stderr
    assert sorted(p.name for p in (setup / "jobs").iterdir()) == ["malta.yaml"]  # nothing new
    done = bbv(*args, "-o", "jobs", "--force", cwd=setup)
    assert done.returncode == 0, done.stderr
    for name, arch in (("vexpress", "arm"), ("malta", "mips")):
        job = yaml.safe_load((setup / "jobs" / f"{name}.yaml").read_text())
        assert job["job_name"] == f"nightly {name}" and job["context"]["arch"] == arch
        assert lava_validate(setup / "jobs" / f"{name}.yaml").returncode == 0
    for bad, message in ((["-o", "-"], "add -o DIR"), ([], "add -o DIR"),
                         (["-o", "jobs/malta.yaml/"], "exists and is not a directory"),
                         (["--image", "x.img", "-o", "jobs"], "--image belongs to one target")):
        done = bbv(*args, *bad, cwd=setup)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


@need("qemu-system-mips64el", "qemu-system-mips")
def test_lava_warns_what_the_labs_device_type_must_add(setup):
    (setup / "barebox-qemu-malta.img.swapped").write_bytes(b"\0" * 4096)
    (setup / "barebox-qemu-malta.img").write_bytes(b"\0" * 4096)
    done = bbv("export", "lava", "-t", "malta64el", "--image", "barebox-qemu-malta.img.swapped",
               cwd=setup)
    assert done.returncode == 0, done.stderr
    assert "the lab's device type must add 'mips64el' to available_architectures" in done.stderr
    # malta: the stock type runs it; the template's NIC becomes the e1000 barebox can use.
    done = bbv("export", "lava", "-t", "malta", "--image", "barebox-qemu-malta.img", cwd=setup)
    assert done.returncode == 0 and done.stderr == ""
    assert yaml.safe_load(done.stdout)["context"]["model"] == "model=e1000"


def test_lava_refuses_host_only_options(setup):
    (setup / "share").mkdir()
    (setup / "c,d.img").write_bytes(b"\0" * 512)
    for extra in (["--fs", "share"], ["--env", "nv/x=@a.img"], ["--blk", "c,d.img"]):
        done = bbv("export", "lava", "--image", "barebox-dt-2nd.img", *extra, "-o", "j.yaml",
                   cwd=setup)
        assert done.returncode == 2, done.stderr
        assert ("LAVA worker" in done.stderr or "rename the file" in done.stderr) and \
            len(done.stderr.splitlines()) == 1
    assert not (setup / "j.yaml").exists()
    done = bbv("export", "lava", "--image", "barebox-dt-2nd.img", "--graphic", "-o", "j.yaml",
               cwd=setup)
    one_line_error(done, 2, "--graphic opens a display window, which a LAVA worker's QEMU")
    assert not (setup / "j.yaml").exists()


@pytest.mark.pure
def test_prefix_ids_leaves_paths_alone():
    group = ["-drive", "if=none,id=hd0,format=raw,file=/x/a,,id=y.img"]
    assert prefix_ids(group) == ["-drive", "if=none,id=bbvhd0,format=raw,file=/x/a,,id=y.img"]
    assert prefix_ids(["-device", "virtconsole,chardev=con0,name=console.con0"]) == \
        ["-device", "virtconsole,chardev=bbvcon0,name=console.con0"]


@pytest.mark.qemu
@pytest.mark.barebox
@pytest.mark.skipif(not (os.environ.get("BBV_BAREBOX_SRC") and os.environ.get("BBV_BAREBOX_IMAGE")),
                    reason="needs BBV_BAREBOX_SRC and BBV_BAREBOX_IMAGE")
@need("qemu-system-arm", "mcopy")
def test_labgrid_boots_real_barebox_with_the_exported_devices(setup):
    src = os.environ["BBV_BAREBOX_SRC"]
    (setup / "hello.txt").write_text("hello through labgrid\n")
    made = bbv("image", "create", "fat.img", "--size", "16M", "--partition", "mbr", "--fat",
               "--add", "hello.txt", cwd=setup)
    assert made.returncode == 0, made.stderr
    done = bbv("export", "labgrid", "-t", "vexpress", "--image",
               os.environ["BBV_BAREBOX_IMAGE"], "--blk", "fat.img", "--blk", "a.img", "--rng",
               "--barebox-src", src, "-o", "env.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    script = textwrap.dedent('''\
        import sys
        from labgrid import Environment
        target = Environment(sys.argv[1]).get_target("main")
        strategy = target.get_driver("Strategy")
        strategy.transition("barebox")
        barebox = target.get_driver("BareboxDriver")
        print("\\n".join(barebox.run_check("ls /dev")))
        print("\\n".join(barebox.run_check("mount /dev/virtioblk0.0 && "
                                           "cat /mnt/virtioblk0.0/hello.txt")))
        strategy.transition("off")
    ''')
    run = subprocess.run([sys.executable, "-c", script, str(setup / "env.yaml")], cwd=src,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    words = run.stdout.split()
    assert {"virtioblk0", "virtioblk0.0", "virtioblk1", "hwrng0"} <= set(words)
    assert "hello through labgrid" in run.stdout


# --- LAVA's own dispatcher ------------------------------------------------------------------

LAVA_DEVICE = TESTS / "lava_device.py"
LAVA_TMP = Path("/var/lib/lava/dispatcher/tmp")  # lava_common.constants.DISPATCHER_DOWNLOAD_DIR


@pytest.fixture(scope="session")
def lava_device_types(tmp_path_factory) -> Path:
    """lava-server's device-types/ (qemu.jinja2, base.jinja2), from its Debian package, which
    need not be installed: `apt-get download` and `dpkg -x` (or BBV_LAVA_DEVICE_TYPES=DIR)."""
    if os.environ.get("BBV_LAVA_DEVICE_TYPES"):
        return Path(os.environ["BBV_LAVA_DEVICE_TYPES"])
    out = tmp_path_factory.mktemp("lava-server")
    got = subprocess.run(["apt-get", "download", "lava-server"], cwd=out, capture_output=True,
                         text=True, timeout=300)
    debs = list(out.glob("lava-server_*.deb"))
    if got.returncode or not debs:
        pytest.skip(f"apt-get download lava-server failed: {got.stderr.strip()[-300:]}")
    subprocess.run(["dpkg", "-x", debs[0], out / "root"], check=True, timeout=120)
    return out / "root" / "usr" / "share" / "lava-server" / "device-types"


@pytest.fixture(scope="session")
def lava_guest(tmp_path_factory) -> Path:
    """The tiny guest: its autoboot countdown waits for a key, as long as it takes, so the job
    only gets to the prompt if LAVA stops the countdown the way the job tells it to."""
    return assemble(TINYGUEST / "tinyguest.s", tmp_path_factory.mktemp("lavaguest"), "guest")


def lava_run(job: Path, device_types: Path, out: Path) -> tuple[str, list[dict]]:
    """Render the device dictionary for the job, run the job with lava-run; (log, results)."""
    device = out / "device.yaml"
    subprocess.run([LAVA_PYTHON, LAVA_DEVICE, device_types, job, device], check=True,
                   timeout=60)
    job_id = f"bbv-test-{os.getpid()}-{job.stem}"  # its own dir under LAVA_TMP
    run = subprocess.run(["lava-run", "--job-id", job_id, "--device", device, "--output-dir",
                          out / "lava", job], capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr  # lava-run logs one YAML mapping a line, on stderr
    results = [yaml.safe_load(line)["msg"] for line in log.splitlines()
               if '"lvl": "results"' in line]
    return log, results


def _lava_run_usable() -> bool:
    return shutil.which("lava-run") is not None and _have_lava() and (
        os.access(LAVA_TMP, os.W_OK) or (not LAVA_TMP.exists() and os.geteuid() == 0))


@pytest.mark.qemu
@pytest.mark.skipif(not _lava_run_usable(),
                    reason=f"needs lava-run (lava-dispatcher) and a writable {LAVA_TMP}")
@need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld", f"{CROSS}objcopy")
def test_lava_job_passes_on_lavas_own_dispatcher(setup, lava_guest, lava_device_types):
    done = bbv("export", "lava", "-t", "vexpress", "--image", str(lava_guest), "--blk", "a.img",
               "--rng", "--exec", "ls /dev", "--exec", "echo hello $?", "--exec", "false",
               "--exec", "true", "-o", "job.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    assert lava_validate(setup / "job.yaml").returncode == 0
    log, results = lava_run(setup / "job.yaml", lava_device_types, setup)
    assert "Job finished correctly" in log, log[-3000:]
    cases = {r["case"]: r["result"] for r in results if r.get("definition") == "0_bbv"}
    # Each --exec is a test case that passes on exit status 0 and fails otherwise.
    assert cases == {"1-ls_dev": "pass", "2-echo_hello": "pass", "3-false": "fail",
                     "4-true": "pass"}, log[-3000:]
    job_result = [r["result"] for r in results if r["case"] == "job"]
    assert job_result == ["pass"]
    # What LAVA started: its template's options, then the job's devices, then the images.
    command = next(line for line in log.splitlines() if "Boot command:" in line)
    assert "-machine virt" in command and "-cpu cortex-a7" in command
    assert "virtio-blk-device,drive=hd0" in command and "virtio-rng-device" in command


# What bbv run says of each, on the tiny guest's `ls /dev` ("full  hwrng0  null  virtioblk0
# virtioblk1  zero") and `echo hello $?`: the output, never the typed line or the marker.
EXPECTED_VERDICTS = {r"^hello 0$": "pass", r"null\s+virtio": "pass", r"(?i)^FULL": "pass",
                     "echo hello": "fail", "^zero": "fail", "bbv-rc": "fail", "nowhere": "fail"}


@pytest.mark.qemu
@pytest.mark.skipif(not _lava_run_usable(),
                    reason=f"needs lava-run (lava-dispatcher) and a writable {LAVA_TMP}")
@need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld", f"{CROSS}objcopy")
def test_lava_expectations_judged_by_lavas_own_dispatcher(setup, lava_guest,
                                                          lava_device_types):
    expects = [a for pattern in EXPECTED_VERDICTS for a in ("--expect", pattern)]
    done = bbv("export", "lava", "-t", "vexpress", "--image", str(lava_guest), "--exec",
               "ls /dev", "--exec", "echo hello $?", *expects, "-o", "job.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    assert lava_validate(setup / "job.yaml").returncode == 0
    log, results = lava_run(setup / "job.yaml", lava_device_types, setup)
    assert "Job finished correctly" in log, log[-3000:]
    cases = [(r["case"], r["result"]) for r in results if r.get("definition") == "0_bbv"]
    assert cases[:2] == [("1-ls_dev", "pass"), ("2-echo_hello", "pass")], log[-3000:]
    assert [result for _, result in cases[2:]] == list(EXPECTED_VERDICTS.values()), cases
    assert cases[2][0] == "expect-1-hello_0"
    # bbv run on the same guest gives the same verdicts
    run = bbv("run", "-t", "vexpress", "--image", str(lava_guest), "--exec", "ls /dev",
              "--exec", "echo hello $?", *expects, "--json", cwd=setup, timeout=120)
    mine = json.loads(run.stdout)["expectations"]
    assert ["pass" if e["ok"] else "fail" for e in mine] == list(EXPECTED_VERDICTS.values())


@pytest.mark.qemu
@pytest.mark.skipif(not _lava_run_usable(),
                    reason=f"needs lava-run (lava-dispatcher) and a writable {LAVA_TMP}")
@need("qemu-system-arm", f"{CROSS}as", f"{CROSS}ld", f"{CROSS}objcopy")
def test_lava_expectations_on_the_boot_log_without_exec(setup, lava_guest, lava_device_types):
    done = bbv("export", "lava", "-t", "vexpress", "--image", str(lava_guest), "--expect",
               r"^model: bbv tiny", "--expect", "Unknown command", "-o", "job.yaml", cwd=setup)
    assert done.returncode == 0, done.stderr
    assert lava_validate(setup / "job.yaml").returncode == 0
    log, results = lava_run(setup / "job.yaml", lava_device_types, setup)
    assert "Job finished correctly" in log, log[-3000:]
    cases = [(r["case"], r["result"]) for r in results if r.get("definition") == "0_bbv"]
    assert cases == [("expect-1-model_bbv_tiny", "pass"),
                     ("expect-2-Unknown_command", "fail")], log[-3000:]


def test_lava_empty_expectation_is_one_line(setup):
    done = bbv("export", "lava", "-t", "vexpress", "--expect", "", cwd=setup)
    one_line_error(done, 2, "--expect '' matches any output")
    assert not done.stdout


def test_lava_bad_expectation_is_one_line(setup):
    done = bbv("export", "lava", "-t", "vexpress", "--expect", "a[", cwd=setup)
    one_line_error(done, 2, "--expect 'a[' is not a valid regular expression: "
                   "unterminated character set at position 1")
    assert not done.stdout


def test_lava_job_name_is_one_lava_takes(setup):
    """lava-server's schema takes a job_name of 1 to 200 characters: bbv refuses the others
    before it writes (or uploads) anything, and a name of 200 passes the schema."""
    args = ["export", "lava", "--image", "barebox-dt-2nd.img", "-o", "j.yaml"]
    for name, message in (("", "--job-name '' is empty"),
                          ("x" * 201, "at most 200 characters and this one is 201 long")):
        one_line_error(bbv(*args, "--job-name", name, cwd=setup), 2, message)
        assert not (setup / "j.yaml").exists()
    done = bbv(*args, "--job-name", "x" * 200, cwd=setup)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((setup / "j.yaml").read_text())["job_name"] == "x" * 200
    if _have_lava():
        assert lava_validate(setup / "j.yaml").returncode == 0
