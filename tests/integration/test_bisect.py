"""bbv bisect end to end with real git, make, a cross assembler and QEMU on the miniature
barebox tree, whose vexpress image is the tiny guest (tests/tinyguest): a history with a commit
that does not build (fixed by the next) and one that changes the guest's answer to `ls`. The
user's checkout must come out byte for byte as it went in."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BBV, need
from conftest import bbv as run_bbv
from process_helpers import CROSS, pids_with_arg
from test_testsuite import make_tree

pytestmark = pytest.mark.qemu
tools = need("git", "make", "qemu-system-arm", f"{CROSS}as", f"{CROSS}objcopy")
CHECK = ("--exec", "ls", "--expect", "virtioblk0")
SLOW_RULE = "\n# bbv bisect tests: BBV_TEST_SLOW_BUILD=S makes every image build last S s\n" \
    "$(objtree)/images/$(image): slow\nslow:\n\t@exec sleep $${BBV_TEST_SLOW_BUILD:-0}\n" \
    ".PHONY: slow\n"
# What barebox's Makefile.lib puts after -ggdb3 on every C compile: -g0 there for --exec only.
FLAGS_RULE = "\n# bbv bisect tests: the CFLAGS_KERNEL of the last build\n" \
    "$(objtree)/images/$(image): cflags\ncflags:\n" \
    "\t@echo '$(CFLAGS_KERNEL)' > $(objtree)/cflags-kernel\n.PHONY: cflags\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


def make_history(base: Path) -> tuple[Path, dict[str, str]]:
    """c0 good, c1, c2, c3 does not build, c4 fixes it, c5 drops virtioblk0 from `ls`, c6;
    the names mapped to shas. The user's checkout is then made dirty: an edit, a staged file,
    an untracked file and a stash."""
    repo = make_tree(base)
    with (repo / "Makefile").open("a") as fh:
        fh.write(SLOW_RULE + FLAGS_RULE)
    (repo / "test" / "py" / "test_ls.py").write_text(
        "def test_ls(shell):\n    assert 'virtioblk0' in ' '.join(shell.run_check('ls'))\n")
    guest = repo / "tinyguest.s"
    good = guest.read_text()
    edits = {  # git tests c3 first: the commit that does not build
        "c0 initial": None,
        "c1 notes": lambda: (repo / "NOTES").write_text("one\n"),
        "c2 notes": lambda: (repo / "NOTES").write_text("two\n"),
        "c3 break the build": lambda: guest.write_text(good.replace(
            "        .ltorg", "        .ltorg\n        not_an_instruction r0\n", 1)),
        "c4 fix the build": lambda: guest.write_text(good),
        "c5 ls without virtioblk0": lambda: guest.write_text(good.replace("virtioblk0  ", "")),
        "c6 notes": lambda: (repo / "NOTES").write_text("three\n"),
    }
    # A filter git knows only when a test configures it (test_signal_while_the_tree_is_made)
    (repo / ".gitattributes").write_text("slow.txt filter=bbvslow\n")
    (repo / "slow.txt").write_text("slow\n")
    git(repo, "init", "-q", "-b", "work")
    shas = {}
    for subject, edit in edits.items():
        if edit:
            edit()
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", subject)
        shas[subject.split()[0]] = git(repo, "rev-parse", "HEAD").strip()
    (repo / "NOTES").write_text("stashed\n")
    git(repo, "stash", "-q")
    (repo / "NOTES").write_text("dirty\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    return repo, shas


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return make_history(tmp_path_factory.mktemp("bisect"))


def snapshot(repo: Path) -> dict:
    """Everything of the user's checkout bbv bisect must leave as it was."""
    gitdir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    return {
        "head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "symbolic-ref", "HEAD"),
        "status": git(repo, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "stash": git(repo, "stash", "list", "--format=%H %s"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "refs": git(repo, "for-each-ref"),
        "bisect_files": sorted(p.name for p in gitdir.iterdir() if "BISECT" in p.name),
        "admin": sorted(p.name for p in (gitdir / "worktrees").glob("*")),
        "index": (gitdir / "index").read_bytes(),
        "files": {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()},
    }


def bisect(repo: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    done = run_bbv("bisect", "-t", "vexpress", *args, cwd=repo, timeout=300, **kwargs)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def leftovers(bbv_dirs: Path) -> list[str]:
    """make or QEMU still running, a half-made tree, or a bisection left in progress in bbv's
    kept tree."""
    found = [str(p) for p in (bbv_dirs / "cache" / "bisect").glob("*/tree.new")]
    for tree in (bbv_dirs / "cache" / "bisect").glob("*/tree"):
        if subprocess.run(["git", "bisect", "log"], cwd=tree, capture_output=True).returncode == 0:
            found.append(f"a bisection in progress in {tree}")
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(bbv_dirs) in argv and ("make" in argv or "qemu-system" in argv):
            found.append(argv.replace("\0", " "))
    return found


@tools
def test_names_the_first_bad_commit_skips_the_unbuildable_and_leaves_the_checkout(
        history, bbv_dirs):
    repo, shas = history
    before = snapshot(repo)
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], *CHECK, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["first_bad"] == shas["c5"] and data["subject"] == "c5 ls without virtioblk0"
    by_commit = {s["commit"]: s for s in data["steps"]}
    assert by_commit[shas["c6"]]["result"] == "bad" and by_commit[shas["c0"]]["result"] == "good"
    skipped = by_commit[shas["c3"]]
    assert skipped["result"] == "skip" and skipped["note"].startswith("does not build: ")
    assert "not_an_instruction" in skipped["note"] and "cache" not in skipped["note"]
    assert by_commit[shas["c4"]]["result"] == "good"
    assert all(set(s) >= {"commit", "result", "build_seconds", "check_seconds"}
               for s in data["steps"])
    log = Path(data["log"]).read_text()
    assert f"git bisect skip {shas['c3']}" in log and f"first bad commit: [{shas['c5']}]" in log
    assert snapshot(repo) == before
    assert not leftovers(bbv_dirs)
    assert f"[1] {shas['c6'][:12]} c6 notes: building" in done.stderr
    # the image is all a boot check uses: built without debug info
    [flags] = bbv_dirs.glob("cache/bisect/*/build/cflags-kernel")
    assert flags.read_text().split() == ["-g0"]


@tools
def test_table_and_a_second_run_builds_incrementally_or_reuses_images(history,
                                                                        bbv_dirs):
    repo, shas = history
    before = snapshot(repo)
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    assert done.returncode == 0, done.stderr
    assert f"first bad commit: {shas['c5']}" in done.stdout
    assert "subject: c5 ls without virtioblk0" in done.stdout and "author: T <t@example.org>" \
        in done.stdout
    assert "(bad end)" in done.stdout and "(good end)" in done.stdout
    again = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    assert again.returncode == 0, again.stderr
    assert "is kept between runs (incremental build)" in again.stderr
    assert "(kept) at" in again.stderr and "configuring in" not in again.stderr
    # the same commits, the same configuration: their images are booted again, not rebuilt
    assert f"[1] {shas['c6'][:12]}: built before, its image kept: not built" in again.stderr
    assert f"{shas['c3'][:12]}: built before" not in again.stderr  # it never built
    [record] = bbv_dirs.glob("cache/bisect/*/build/bbv-build.json")
    record.write_text(record.read_text().replace('"gcc_version": "', '"gcc_version": "0.'))
    other = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    assert other.returncode == 0, other.stderr  # another compiler: the bad end is built
    assert f"[1] {shas['c6'][:12]}: built before" not in other.stderr
    assert f"[2] {shas['c0'][:12]}: built before, its image kept" in other.stderr
    assert snapshot(repo) == before


@tools
def test_command_check_follows_git_convention_and_sees_no_bisect_in_the_checkout(
        history, tmp_path):
    repo, shas = history
    before = snapshot(repo)
    seen = tmp_path / "seen"
    script = tmp_path / "check.sh"
    # skip c4 (125); bad when the image lacks virtioblk0; and record, mid-bisection, whether
    # the user's checkout shows any bisect state.
    script.write_text(f"""#!/bin/sh
echo "$BBV_BISECT_COMMIT $(git -C {repo} for-each-ref refs/bisect | wc -l) \
$(git -C {repo} bisect log >/dev/null 2>&1 && echo bisecting) $(pwd)" >> {seen}
test -f "$BBV_BISECT_BUILD_DIR/bbv-build.json" || exit 200
test -z "$(cat "$BBV_BISECT_BUILD_DIR/cflags-kernel")" || exit 202  # a whole build, -ggdb3
test "$(git -C "$BBV_BISECT_SRC" rev-parse HEAD)" = "$BBV_BISECT_COMMIT" || exit 201
[ "$BBV_BISECT_COMMIT" = {shas['c4']} ] && exit 125
grep -q virtioblk0 "$BBV_BISECT_IMAGE"
""")
    script.chmod(0o755)
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--json", "--", str(script))
    # c4 skipped by the command, c3 because it does not build: git cannot tell c3, c4, c5 apart
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["first_bad"] is None and data["why"].startswith("only skipped commits are left")
    assert set(data["candidates"]) == {shas["c3"], shas["c4"], shas["c5"]}
    results = {s["commit"]: s["result"] for s in data["steps"]}
    assert results[shas["c4"]] == "skip" and results[shas["c3"]] == "skip"
    assert "git bisect skip" in Path(data["log"]).read_text()
    lines = [line.split() for line in seen.read_text().splitlines()]
    assert len(lines) >= 3 and all(line[1:] == ["0", str(repo)] for line in lines), lines
    assert snapshot(repo) == before


@tools
def test_test_check_runs_barebox_suite_through_bbv_test(history):
    pytest.importorskip("labgrid")
    repo, shas = history
    before = snapshot(repo)
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--test", "ls", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["first_bad"] == shas["c5"]
    [bad_end] = [s for s in data["steps"] if s["role"] == "bad end"]
    assert bad_end["note"] == "1 failed: test_ls"
    none = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--test", "nosuchtest")
    assert none.returncode == 1 and "selected no test" in none.stdout
    assert snapshot(repo) == before


@tools
def test_kept_tree_keeps_file_times_and_a_tree_made_anew_gets_old_ones(history, tmp_path,
                                                                      bbv_dirs):
    """The tree is kept between runs: checked out anew, git rewrites only the files that
    differ, so the others stay older than the kept build. A tree made anew (lost, or a first
    run) gets an old time on every file unchanged since the build directory's last successful
    build, so make rebuilds only what changed, and keeps it on the next checkout."""
    repo, shas = history
    seen = tmp_path / "mtimes"
    script = tmp_path / "mtimes.sh"
    script.write_text(f"""#!/bin/sh
echo "$BBV_BISECT_COMMIT $(stat -c %Y "$BBV_BISECT_SRC/Kconfig") \\
$(stat -c %Y "$BBV_BISECT_SRC/NOTES")" >> {seen}
grep -q virtioblk0 "$BBV_BISECT_IMAGE"
""")
    script.chmod(0o755)
    args = ("--good", shas["c1"], "--bad", shas["c6"], "--", str(script))

    def run() -> tuple[subprocess.CompletedProcess, list[str]]:
        seen.unlink(missing_ok=True)
        done = bisect(repo, *args)
        assert done.returncode == 0, done.stderr
        return done, seen.read_text().splitlines()[0].split()

    old = str(946684800)
    done, first = run()
    assert "(made) at" in done.stderr and first[1] != old  # no build to keep yet
    done, second = run()
    assert "(kept) at" in done.stderr and second[0] == shas["c6"]
    assert second[1] == first[1]  # Kconfig never changed: not rewritten
    [tree] = (bbv_dirs / "cache" / "bisect").glob("*/tree")
    shutil.rmtree(tree)
    done, third = run()
    # Kconfig never changed: old; NOTES changed in c6, after any commit built last: new
    assert "(made) at" in done.stderr and third[1] == old and third[2] != old
    done, fourth = run()
    assert "(kept) at" in done.stderr and fourth[1] == old


@tools
def test_the_users_own_build_of_the_bad_end_is_booted_not_rebuilt(history, tmp_path, bbv_dirs):
    """`bbv build` in a clean checkout at --bad: make would call its image up to date, so its
    image is the bad end's (once bbv's build directory has the same configuration); a file
    touched after it is not (make would rebuild)."""
    repo, shas = history
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))  # clean, at c6
    built = run_bbv("build", "vexpress", "--src", str(clone), cwd=clone, timeout=300)
    assert built.returncode == 0, built.stderr
    before = snapshot(clone)
    images = bbv_dirs / "cache" / "bisect"
    taken = "its image is booted for that commit"
    reused = f"[1] {shas['c6'][:12]}: built before, its image kept: not built"
    first = bisect(clone, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    # bbv's build directory is new: its configuration unknown yet, so the bad end is built
    assert first.returncode == 0 and taken not in first.stderr and reused not in first.stderr
    for kept in images.glob("*/images"):
        shutil.rmtree(kept)
    again = bisect(clone, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    assert again.returncode == 0 and taken in again.stderr and reused in again.stderr
    assert f"[2] {shas['c0'][:12]} c0 initial: building" in again.stderr
    assert snapshot(clone) == before
    for kept in images.glob("*/images"):
        shutil.rmtree(kept)
    os.utime(clone / "Kconfig")  # newer than the image: make would build again
    third = bisect(clone, "--good", shas["c0"], "--bad", shas["c6"], *CHECK)
    assert third.returncode == 0 and taken not in third.stderr and reused not in third.stderr
    after = snapshot(clone)  # its git status refreshed the index (Kconfig's new time)
    for state in (before, after):
        state.pop("index")
    assert after == before


@tools
def test_command_status_128_stops_with_one_line(history):
    repo, shas = history
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--", "sh", "-c", "exit 130")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("bbv: error: the check command exited 130")


@tools
def test_repeat_catches_a_flaky_failure(history, tmp_path):
    repo, shas = history
    counts = tmp_path / "counts"
    counts.mkdir()
    # From c5 on, the check fails only on its second run for a commit: flaky.
    script = tmp_path / "flaky.sh"
    script.write_text(f"""#!/bin/sh
n=$(cat {counts}/$BBV_BISECT_COMMIT 2>/dev/null || echo 0); n=$((n + 1))
echo $n > {counts}/$BBV_BISECT_COMMIT
grep -q virtioblk0 "$BBV_BISECT_IMAGE" && exit 0
[ $n -eq 2 ] && exit 1
exit 0
""")
    script.chmod(0o755)
    once = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--", str(script))
    assert once.returncode == 1 and f"--bad {shas['c6'][:12]} passes the check" in once.stdout
    for path in counts.iterdir():
        path.unlink()
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--repeat", "3", "--json",
                  "--", str(script))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["first_bad"] == shas["c5"]
    runs = {p.name: int(p.read_text()) for p in counts.iterdir()}
    assert runs[shas["c0"]] == 3 and runs[shas["c6"]] == 2  # stops at the first failure


@tools
@pytest.mark.parametrize("good, bad, words", [
    ("c5", "c6", "--good {sha} fails the check: /virtioblk0/ not found"),
    ("c0", "c4", "--bad {sha} passes the check"),
    ("c3", "c6", "--good {sha} could not be checked (does not build: "),
])
def test_wrong_ends_are_refused(history, good, bad, words):
    repo, shas = history
    before = snapshot(repo)
    done = bisect(repo, "--good", shas[good], "--bad", shas[bad], *CHECK, "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    sha = shas[good] if words.startswith("--good") else shas[bad]
    assert data["first_bad"] is None and data["why"].startswith(words.format(sha=sha[:12]))
    assert snapshot(repo) == before


@tools
def test_boot_that_never_reaches_the_prompt_is_bad_or_skipped(history):
    repo, shas = history
    # `hang` never returns: the check times out, which counts as bad; the boot itself works
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--exec", "hang",
                  "--timeout", "2", "--json")
    assert done.returncode == 1
    assert "timed out after 2 s" in json.loads(done.stdout)["why"]


@pytest.mark.parametrize("args, words", [
    (["--good", "nosuchrev", "--bad", "HEAD", *CHECK], "--good 'nosuchrev': no such commit"),
    (["--good", "HEAD", "--bad", "HEAD~0", *CHECK], "--good and --bad are the same commit"),
    (["--good", "HEAD~1", "--bad", "HEAD"], "give one check"),
    (["--good", "HEAD~1", "--bad", "HEAD", *CHECK, "--", "true"], "give one check"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--exec", "ls", "--expect", "("],
     "is not a valid regular expression"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--exec", "ls", "--blk", "/nonexistent.img"],
     "/nonexistent.img"),
])
def test_bad_input_is_one_line_exit_2(history, args, words):
    repo, _ = history
    before = snapshot(repo)
    done = bisect(repo, *args)
    assert done.returncode == 2, done.stderr
    assert words in one_error_line(done)
    assert snapshot(repo) == before


@need("qemu-system-riscv64")
def test_each_boot_is_on_the_target_bisected(history):
    from barebox_virtio_cli.bisect.service import BisectRequest, check_request
    from barebox_virtio_cli.run.request import RunRequest

    repo, shas = history
    request = BisectRequest("riscv64", shas["c0"], shas["c6"], src=repo,
                            boot=RunRequest(exec=("version",)))
    checked, _, good, bad, target = check_request(request)
    assert checked.boot.target == target.name == "riscv64" and checked.boot.exec == ("version",)
    assert (good, bad) == (shas["c0"], shas["c6"])


def test_not_a_git_tree_is_one_line_exit_2(tmp_path):
    tree = make_tree(tmp_path)
    done = bisect(tree, "--good", "a", "--bad", "b", *CHECK)
    assert done.returncode == 2
    assert "is not in a git checkout" in one_error_line(done)


def test_no_target_is_one_line_exit_2(history):
    repo, _ = history
    done = run_bbv("bisect", "--good", "HEAD~1", "--bad", "HEAD", *CHECK, cwd=repo)
    assert done.returncode == 2 and "-t TARGET" in one_error_line(done)


# --- signals at each stage -------------------------------------------------------------------

def start(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*BBV, "bisect", "-t", "vexpress", *args], cwd=repo,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@tools
@pytest.mark.parametrize("stage, sig", [
    ("make", signal.SIGTERM), ("make", signal.SIGINT), ("make", signal.SIGHUP),
    ("qemu", signal.SIGTERM), ("command", signal.SIGTERM),
])
def test_signal_at_each_stage_stops_everything_and_exits_128_plus_n(history, bbv_dirs,
                                                                    tmp_path, stage, sig):
    repo, shas = history
    before = snapshot(repo)
    marker, seconds = tmp_path / "running", str(600 + os.getpid() % 1000)  # a sleep of ours
    args = {"make": CHECK, "qemu": ("--exec", "hang", "--timeout", "600"),
            "command": ("--", "sh", "-c", f"touch {marker}; sleep {seconds}; true")}[stage]
    env = {"BBV_TEST_SLOW_BUILD": seconds} if stage == "make" else {}
    proc = start(repo, "--good", shas["c0"], "--bad", shas["c6"], *args, env=env)
    try:
        if stage == "make":
            wait_for(lambda: any(cmdline(p).startswith("sleep ") for p in pids_with_arg(seconds)))
        elif stage == "qemu":
            wait_for(lambda: [p for p in pids_with_arg("-kernel") if str(bbv_dirs) in cmdline(p)])
            time.sleep(1)  # booted, `hang` typed
        else:
            wait_for(marker.exists)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, proc.stderr
    assert not leftovers(bbv_dirs) and not pids_with_arg(seconds)
    assert snapshot(repo) == before


@tools
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_the_tree_is_made_exits_128_plus_n_and_leaves_nothing(
        history, bbv_dirs, tmp_path, sig):
    """A first run makes its tree (25 000 files for barebox); a filter that sleeps while git
    checks out slow.txt holds the making long enough to be signalled right in it."""
    repo, shas = history
    before = snapshot(repo)
    seconds = str(1700 + os.getpid() % 1000)
    config = tmp_path / "gitconfig"
    config.write_text(f'[filter "bbvslow"]\n\tsmudge = sleep {seconds}; cat\n')
    proc = start(repo, "--good", shas["c0"], "--bad", shas["c6"], *CHECK,
                 env={"GIT_CONFIG_GLOBAL": str(config)})
    try:
        wait_for(lambda: any(cmdline(p).startswith("sleep ") for p in pids_with_arg(seconds)))
        assert list((bbv_dirs / "cache" / "bisect").glob("*/tree.new"))  # in the making
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, proc.stderr
    assert not list((bbv_dirs / "cache" / "bisect").glob("*/tree*"))
    assert not leftovers(bbv_dirs) and not pids_with_arg(seconds)
    assert snapshot(repo) == before


@tools
def test_qemu_refusing_its_command_line_stops_with_its_own_line(history):
    repo, shas = history
    before = snapshot(repo)
    done = bisect(repo, "--good", shas["c0"], "--bad", shas["c6"], "--exec", "ls",
                  "--qemu-arg", "-nonsense")
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("bbv: error: QEMU refused to start at both ends"), done.stderr
    assert "-nonsense: invalid option" in last
    # each end's step line names QEMU's reason, as bbv run does
    assert done.stderr.count("QEMU said: qemu-system-arm: -nonsense: invalid option") == 2
    assert snapshot(repo) == before


def test_a_commit_beyond_a_shallow_clone_says_so(history, tmp_path):
    repo, _ = history
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", f"file://{repo}", str(clone))
    done = bisect(clone, "--good", "HEAD~6", "--bad", "HEAD", *CHECK)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done)
    assert "--good 'HEAD~6': no such commit" in line and "shallow clone" in line
    assert "git fetch --unshallow" in line
    deep = bisect(repo, "--good", "nosuchrev", "--bad", "HEAD", *CHECK)
    assert "shallow" not in one_error_line(deep)
