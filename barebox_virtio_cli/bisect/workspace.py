"""Side effects of `bbv bisect` on git: the user's repository read, never changed. `git bisect`
runs in a repository of bbv's own in its cache directory, kept between runs: made once with `git
init`, its objects the user's (through objects/info/alternates: nothing copied), so that no
worktree is registered in the user's repository and no bisection state reaches it, and checked
out anew each run (git rewrites only the files that differ). Beside it, also kept, the build
directory, and what it was last built from, so that a tree made anew gives its files the times
make needs for an incremental build (see Workspace.restore_times)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from barebox_virtio_cli.bisect.steps import Commit
from barebox_virtio_cli.build.record import default_build_dir, read_record
from barebox_virtio_cli.errors import BbvError, UsageError
from barebox_virtio_cli.util.atomic import replacing
from barebox_virtio_cli.util.jsonfile import read_object, write_json
from barebox_virtio_cli.util.lockfile import exclusive
from barebox_virtio_cli.util.paths import cache_dir
from barebox_virtio_cli.util.processes import start_child, stop_group
from barebox_virtio_cli.util.signals import deferred

# Older than any build output, so that make takes an unchanged source file for up to date.
OLD_TIME = 946684800  # 2000-01-01
IMAGES_KEPT = 32  # images of earlier builds kept for reuse (about 1 MB each)
# What decides the image a commit builds to, besides the commit (the build record's fields).
_BUILD_KEY = ("target", "arch", "defconfig", "kconfig", "toolchain", "gcc", "gcc_version")
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                 "GIT_COMMON_DIR", "GIT_NAMESPACE")


def git(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """git with its output collected, in the C locale, never prompting; it never outlives bbv.
    check: a failure is a BbvError naming git's message."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    argv = ["git", "-c", "advice.detachedHead=false", "-c", "core.hooksPath=/dev/null", *args]
    try:  # a group of its own: what git starts (a filter, a hook) is stopped with it
        proc = start_child(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors="replace", start_new_session=True)
    except OSError as exc:
        raise BbvError(f"cannot run git: {exc.strerror}; on Debian: apt install git") from None
    try:
        out, err = proc.communicate()
    finally:
        stop_group(proc)
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and done.returncode != 0:
        message = (err.strip() or out.strip()).splitlines()
        raise BbvError(f"git {' '.join(args[:2])} failed: {message[-1] if message else ''}")
    return done


def toplevel(src: Path) -> Path:
    """The top of the git checkout src is in; a usage error if it is none."""
    if not src.is_dir():
        raise UsageError(f"--src {src}: no such directory")
    done = git(["rev-parse", "--show-toplevel"], src, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise UsageError(f"{src} is not in a git checkout; bbv bisect needs barebox's history "
                         "(git clone https://git.pengutronix.de/git/barebox), or pass --src DIR")
    return Path(done.stdout.strip())


def resolve(repo: Path, option: str, rev: str) -> str:
    """The full sha of a commit the user named; a usage error if there is none."""
    done = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
               repo, check=False)
    if done.returncode != 0 or not rev.strip():
        if is_shallow(repo):
            raise UsageError(f"{option} {rev!r}: no such commit in {repo}, a shallow clone "
                             "(its history is cut short): run 'git fetch --unshallow' there, "
                             "then bisect again")
        raise UsageError(f"{option} {rev!r}: no such commit in {repo}; give a sha, tag or "
                         "branch ('git log --oneline' lists them)")
    return done.stdout.strip()


def is_shallow(repo: Path) -> bool:
    done = git(["rev-parse", "--is-shallow-repository"], repo, check=False)
    return done.stdout.strip() == "true"


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return git(["merge-base", "--is-ancestor", older, newer], repo, check=False).returncode == 0


def describe(repo: Path, sha: str) -> Commit:
    fields = git(["show", "-s", "--date=iso", "--format=%H%x00%s%x00%an <%ae>%x00%ad", sha],
                 repo).stdout.rstrip("\n").split("\0")
    return Commit(*fields)


def subject(repo: Path, sha: str) -> str:
    return git(["show", "-s", "--format=%s", sha], repo).stdout.strip()


class Workspace:
    """bbv's directory for bisecting one repository on one target, all kept between runs:
    tree/ (where git bisect runs), build/, times.json (what build/ was built from), images/
    (the last images built, by commit), bisect.log."""

    def __init__(self, root: Path, repo: Path, target: str) -> None:
        self.root, self.repo, self.target = root, repo, target
        self.tree, self.build_dir = root / "tree", root / "build"
        self.log, self.images = root / "bisect.log", root / "images"
        self.created = False  # the tree was made in this run (not kept from an earlier one)

    @classmethod
    def for_repo(cls, repo: Path, target: str) -> Workspace:
        key = hashlib.sha256(str(repo).encode()).hexdigest()[:12]
        return cls(cache_dir() / "bisect" / f"{target}-{repo.name}-{key}", repo, target)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One bisection at a time in this workspace, or a clear error naming the holder."""
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive(self.root / "lock", lambda pid: BbvError(
                f"another bbv bisect of this tree and target is running (pid {pid}); wait for "
                "it to finish")):
            yield

    @contextmanager
    def checked_out(self, sha: str) -> Iterator[Path]:
        """The tree at sha: detached, clean, no bisection in progress. Kept between runs and
        checked out anew (git rewrites only the files that differ, so the others keep times
        older than the build directory's objects); made when missing or unusable. On every way
        out its bisection state goes (the tree stays)."""
        self.created = not self._reuse(sha)
        if self.created:
            self._create(sha)
        try:
            yield self.tree
        finally:
            with deferred():
                self.run("bisect", "reset", "HEAD", check=False)

    def _objects(self) -> str:
        return git(["rev-parse", "--path-format=absolute", "--git-path", "objects"],
                   self.repo).stdout.strip()

    def _reuse(self, sha: str) -> bool:
        """Check the kept tree out at sha; False if there is none or git cannot."""
        alternates = self.tree / ".git" / "objects" / "info" / "alternates"
        try:
            if alternates.read_text().strip() != self._objects():
                return False
        except OSError:
            return False
        # Left by a git killed with an earlier bbv (SIGKILL); the workspace lock is ours.
        (self.tree / ".git" / "index.lock").unlink(missing_ok=True)
        return all(self.run(*args, check=False).returncode == 0 for args in (
            ("bisect", "reset", "HEAD"), ("checkout", "-q", "--detach", "--force", sha),
            ("clean", "-ffdxq")))

    def _create(self, sha: str) -> None:
        """A new repository in tree.new whose objects are the user's (alternates: nothing
        copied, no worktree registered in their repository), checked out at sha, then renamed
        to tree. A signal or an error on the way removes tree.new."""
        new = self.root / "tree.new"
        with deferred():
            for path in (self.tree, new):
                shutil.rmtree(path, ignore_errors=True)
        try:
            git(["init", "-q", str(new)], self.root)
            objects = self._objects()
            (new / ".git" / "objects" / "info" / "alternates").write_text(objects + "\n")
            shallow = Path(objects).parent / "shallow"  # a shallow clone's boundary
            if shallow.is_file():
                shutil.copyfile(shallow, new / ".git" / "shallow")
            git(["config", "gc.auto", "0"], new)
            git(["checkout", "-q", "--detach", "--force", sha], new)
        except BaseException:
            with deferred():
                shutil.rmtree(new, ignore_errors=True)
            raise
        new.rename(self.tree)

    # --- git bisect in the tree -------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return git(list(args), self.tree, check)

    def head(self) -> str:
        return self.run("rev-parse", "HEAD").stdout.strip()

    def checkout(self, sha: str) -> None:
        self.run("checkout", "--quiet", "--detach", sha)

    def bisect(self, *args: str) -> str:
        """git bisect start|good|bad|skip; its answer (git exits non-zero when only skipped
        commits are left, which the answer says)."""
        done = self.run("bisect", *args, check=False)
        text = done.stdout + done.stderr
        if done.returncode != 0 and "There are only 'skip'ped commits" not in text:
            lines = text.strip().splitlines()
            raise BbvError(f"git bisect {args[0]} failed: {lines[-1] if lines else ''}")
        return text

    def bisect_log(self) -> str:
        return self.run("bisect", "log").stdout

    # --- file times for incremental builds across runs ---------------------------------------

    def restore_times(self) -> int:
        """Give a tree made anew the times make needs: the build directory was built from a
        known commit (times.json), so every file unchanged since then gets OLD_TIME (older
        than its objects) and only the changed ones stay new. Without a known commit (a first
        run) nothing changes and make builds everything. A kept tree needs none of this. The
        number of files set."""
        if not self.created:
            return 0
        state = read_object(self.root / "times.json") or {}
        base = state.get("base")
        if not base or not (self.build_dir / ".config").is_file() or \
                self.run("cat-file", "-e", f"{base}^{{commit}}", check=False).returncode:
            return 0
        changed = self._changed(base) | set(state.get("dirty", []))
        names = self.run("ls-files", "-z").stdout.split("\0")
        count = 0
        for name in names:
            if name and name not in changed:
                try:
                    os.utime(self.tree / name, (OLD_TIME, OLD_TIME), follow_symlinks=False)
                except OSError:
                    continue
                count += 1
        # The index learns the new times, else the next checkout rewrites every file.
        self.run("update-index", "-q", "--refresh", check=False)
        return count

    def building(self, sha: str) -> None:
        """Before a build from sha: until it succeeds, the files it changes are in doubt (make
        may stop half way), so they stay new for a later run."""
        state = read_object(self.root / "times.json") or {}
        base = state.get("base")
        if not base:
            return
        dirty = set(state.get("dirty", [])) | self._changed(base, sha)
        write_json(self.root / "times.json", {"base": base, "dirty": sorted(dirty)})

    def built(self, sha: str) -> None:
        """After a successful build from sha: the build directory matches sha's tree."""
        write_json(self.root / "times.json", {"base": sha, "dirty": []})

    def _changed(self, base: str, sha: str | None = None) -> set[str]:
        args = ["diff", "--no-renames", "--name-only", "-z", base] + ([sha] if sha else [])
        return {n for n in self.run(*args).stdout.split("\0") if n}

    # --- images of earlier builds, by commit ---------------------------------------------------

    def kept_image(self, sha: str) -> Path | None:
        """The image sha built to in an earlier step or run, if the build directory's
        configuration (defconfig, fragments, toolchain and its version) is still the one it
        was built with."""
        image = self.images / f"{sha}.img"
        kept, now = read_object(self.images / f"{sha}.json"), self._build_key(self.build_dir)
        if not now["toolchain"] or kept != now or not image.is_file():
            return None
        return image

    def keep_image(self, sha: str, image: Path, built_in: Path | None = None) -> None:
        """Keep what sha built to in built_in (default: the build directory), the
        IMAGES_KEPT newest only; its record is written last."""
        self.images.mkdir(exist_ok=True)
        with replacing(self.images / f"{sha}.img") as tmp:
            shutil.copyfile(image, tmp)
        write_json(self.images / f"{sha}.json", self._build_key(built_in or self.build_dir))
        records = sorted(self.images.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in records[:-IMAGES_KEPT]:
            old.unlink(missing_ok=True)
            old.with_suffix(".img").unlink(missing_ok=True)

    def adopt(self, sha: str) -> Path | None:
        """The user's own build of the target in their checkout (SRC/build-TARGET, `bbv
        build`), its image kept as sha's when make would call it up to date at sha: HEAD at
        sha, no tracked file modified, and every one older than the image. The
        directory adopted from, or None. Only reads (git status takes no optional lock, so
        the index is not refreshed)."""
        out = default_build_dir(self.repo, self.target)
        record = read_record(out)
        image = record.image if record else None
        if (record is None or record.src != self.repo or image is None or not image.is_file()
                or self.kept_image(sha) is not None
                or git(["rev-parse", "HEAD"], self.repo).stdout.strip() != sha):
            return None
        status = git(["--no-optional-locks", "status", "--porcelain", "-z",
                      "--untracked-files=no"], self.repo, check=False)
        if status.returncode or status.stdout:
            return None
        built = image.stat().st_mtime
        for name in git(["ls-files", "-z"], self.repo).stdout.split("\0"):
            try:
                if name and os.lstat(self.repo / name).st_mtime >= built:
                    return None
            except OSError:
                return None
        self.keep_image(sha, image, out)
        return out

    @staticmethod
    def _build_key(build_dir: Path) -> dict:
        record = read_record(build_dir)
        fields = record.to_json() if record else {}
        return {name: fields.get(name) for name in _BUILD_KEY}
