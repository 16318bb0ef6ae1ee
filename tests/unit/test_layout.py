"""The package layout the README's design section promises, checked on the source: pure
modules import only pure modules, command modules never import each other, nothing below the
CLI imports `commands`, and package __init__ files stay empty (start-up time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.pure

PACKAGE = ROOT / "barebox_virtio_cli"
PURE = {"errors", "util.validate", "run.request", "qemu.args", "qemu.info", "build.kbuild",
        "console.logic", "session.shell", "session.report", "images.plan", "doctor.checks",
        "quickstart.plan", "export.jobs", "targets.target", "images.arch",
        "lava.identity", "lava.results", "lava.state", "bisect.steps",
        "testsuite.requirements", "testsuite.full", "ci.workflow", "ci.envs"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imports(path: Path) -> set[str]:
    """Every barebox_virtio_cli module path imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("barebox_virtio_cli"):
            base = node.module.removeprefix("barebox_virtio_cli").lstrip(".")
            for alias in node.names:  # `from barebox_virtio_cli.build import kbuild`
                candidate = f"{base}.{alias.name}" if base else alias.name
                found.add(candidate if (PACKAGE / f"{candidate.replace('.', '/')}.py").is_file()
                          else base)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_only_pure_modules(name):
    assert imports(MODULES[name]) <= PURE, imports(MODULES[name]) - PURE


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("commands.")))
def test_command_modules_do_not_import_each_other(name):
    others = {n for n in imports(MODULES[name]) if n.startswith("commands.")}
    assert others <= {"commands._options"}, others


@pytest.mark.parametrize("name", sorted(n for n in MODULES
                                        if not n.startswith("commands.") and n != "cli"))
def test_nothing_below_the_cli_imports_commands(name):
    assert not any(n.startswith("commands") for n in imports(MODULES[name]))


def test_package_init_files_are_empty():
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert inits and all(p.read_text() == "" for p in inits)


def test_every_bbv_run_option_is_a_run_request_field():
    """A new run option is one click option (commands/_options.py or commands/run.py) and one
    RunRequest field of the same name; bbv export shares the device options."""
    from barebox_virtio_cli.commands.export import labgrid
    from barebox_virtio_cli.commands.run import run
    from barebox_virtio_cli.run.request import FIELDS

    names = set(FIELDS)
    assert {p.name for p in run.params} == names
    own = {"output", "force", "targets", "barebox_src", "no_strategy"}  # -t: one per target
    assert {p.name for p in labgrid.params} - own <= names
    from barebox_virtio_cli.commands.lava import submit

    own = {"job_files", "targets", "commands", "expectations", "job_name", "job_timeout",
           "device_type", "tags", "priority", "artifact_url", "serve", "no_wait", "identity",
           "url", "token", "timeout", "verbose", "as_json", "junit_dir"}
    assert {p.name for p in submit.params} - own <= names


SOCKETS = "util.sockets"


def socket_rule_breaches(path: Path) -> list[str]:
    """The unix socket path limit (107/108) and the `unix:`/`tcp:` prefixes read from text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in (107, 108):
            found.append(f"line {node.lineno}: {node.value}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "removeprefix") and \
                any(isinstance(a, ast.Constant) and a.value in ("unix:", "tcp:")
                    for a in node.args):
            found.append(f"line {node.lineno}: {node.func.attr}({ast.unparse(node.args[0])})")
    return found


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != SOCKETS))
def test_only_util_sockets_knows_socket_path_limits_and_endpoint_syntax(name):
    assert socket_rule_breaches(MODULES[name]) == []


def test_the_socket_rule_sees_what_it_forbids():
    assert len(socket_rule_breaches(MODULES[SOCKETS])) >= 3


DOWNLOAD = "util.download"
HTTP_AND_ARCHIVES = {"requests", "urllib3", "tarfile", "zipfile", "http", "urllib.request"}


def top_imports(path: Path) -> set[str]:
    """The modules path imports from outside the package, at any level."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != DOWNLOAD))
def test_only_util_download_speaks_http_or_unpacks_archives(name):
    used = {m for m in top_imports(MODULES[name])
            if m in HTTP_AND_ARCHIVES or m.split(".")[0] in {"requests", "urllib3", "tarfile"}}
    assert used == set(), f"{name} imports {used}; use util/download.py"


def test_the_download_rule_sees_what_it_forbids():
    assert {"requests", "tarfile"} <= top_imports(MODULES[DOWNLOAD])


# Being renamed or merged in issue 19's other parts; remove a name once it is unique.
SHARED_CLASS_NAMES_LEFT = {"_SplitAtDashes"}


def test_each_class_name_means_one_thing():
    where: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(name)
    shared = {n: m for n, m in where.items() if len(m) > 1}
    assert set(shared) <= SHARED_CLASS_NAMES_LEFT, shared


def test_bbv_test_takes_bbv_runs_device_options_as_they_are():
    """One meaning per option name: bbv test's device options are bbv run's, and a device
    option becomes a RunRequest field for the export of each target."""
    import click

    from barebox_virtio_cli.commands._options import device_options
    from barebox_virtio_cli.commands.run import run
    from barebox_virtio_cli.commands.test import test

    def described(params):
        return {p.name: (p.opts, p.multiple, p.count, p.is_flag, p.flag_value, p.help)
                for p in params if isinstance(p, click.Option)}

    devices = described(device_options(lambda: None).__click_params__)
    assert devices.items() <= described(run.params).items()
    assert devices.items() <= described(test.params).items()


def _tree(name: str) -> ast.AST:
    return ast.parse(MODULES[name].read_text())


def test_one_function_maps_a_signal_to_an_exit_status():
    """128+N is written once: util/signals.signal_status (Signalled.exit_status and
    exit_status for a child's returncode use it)."""
    def adds_128(node: ast.AST) -> bool:
        return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and any(
            isinstance(side, ast.Constant) and side.value == 128
            for side in (node.left, node.right))

    writers = {name for name in MODULES if any(adds_128(n) for n in ast.walk(_tree(name)))}
    assert writers == {"util.signals"}


def test_one_exception_for_a_signal():
    """util/signals.Signalled is the only exception that means 'stopped by signal N'."""
    defined = {(name, node.name) for name in MODULES for node in ast.walk(_tree(name))
               if isinstance(node, ast.ClassDef) and node.name in ("Signalled", "Stopped")}
    assert defined == {("util.signals", "Signalled")}


# The modules that start processes, and what they start. Only qemu/machine starts QEMU to boot
# (qemu/probe runs short `-M none` queries); a module starting something new is added here.
STARTERS = {
    "qemu.machine": "QEMU, for every run",
    "qemu.probe": "QEMU -M none, to query what it supports",
    "build.make": "make",
    "build.ccache": "ccache --version",
    "build.toolchain": "a compiler, for its version",
    "images.create": "mkfs, mtools, sfdisk, qemu-img",
    "debug.gdbrun": "gdb",
    "console.daemon": "bbv's console server (python -m)",
    "testsuite.groups": "pytest, in a process group of its own",
    "bisect.service": "the user's check command (-- CMD), in a process group of its own",
    "bisect.workspace": "git (worktree, bisect)",
    "doctor.host": "openssl, to probe a behaviour barebox's test suite depends on",
}
_STARTING = {("subprocess", "Popen"), ("subprocess", "run"), ("subprocess", "call"),
             ("subprocess", "check_call"), ("subprocess", "check_output"), ("pexpect", "spawn"),
             ("os", "posix_spawn"), ("os", "posix_spawnp"), ("os", "execv"), ("os", "execvp"),
             ("os", "execve"), ("os", "execvpe"), ("os", "fork"), ("pty", "spawn")}


def _starts_processes(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("start_child", "Popen", "spawn"):
            return True
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                ((func.value.id, func.attr) in _STARTING or func.attr == "start_child"):
            return True
    return False


def test_only_the_listed_modules_start_processes():
    starting = {name for name in MODULES if name != "util.processes"
                and _starts_processes(_tree(name))}
    assert starting == set(STARTERS)


def test_only_the_machine_starts_qemu_with_a_command_line_bbv_built():
    """A module that builds a QEMU command line (qemu/args.build_command) and starts processes
    is the machine; everything else that boots QEMU is a caller of qemu/machine.Machine."""
    builders = {name for name in MODULES if any(
        isinstance(n, ast.Name) and n.id == "build_command" or
        isinstance(n, ast.alias) and n.name == "build_command" for n in ast.walk(_tree(name)))}
    assert builders & set(STARTERS) == {"qemu.machine"}


# Printing belongs to the output helpers: util/output (results) and util/status (status lines and
# live displays); a service shows progress through them.
OUTPUT_HELPERS = {"util.output", "util.status"}


def _imports_click_or_rich(name: str) -> bool:
    for node in ast.walk(_tree(name)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n.split(".")[0] in ("click", "rich") for n in names):
            return True
    return False


def test_nothing_below_commands_imports_click_or_rich_but_the_output_helpers():
    below = {name for name in MODULES if not name.startswith("commands.") and name != "cli"}
    offenders = {name for name in below if _imports_click_or_rich(name)}
    assert offenders == OUTPUT_HELPERS, \
        f"print through util/output or util/status: {offenders - OUTPUT_HELPERS}"


# Below commands/, bbv's own modules are imported at the top of a module; a function imports
# one only to keep `bbv run --dry-run` from loading a mode it does not run (benchmarks/startup.py).
LAZY_FOR_START_UP = {
    "entry": "the CLI, after SIGINT's plain default is set",
    "run.service": "each mode's modules (build, --attach, --dump-dtb) when that mode runs",
    "qemu.machine": "the console server, for a run that serves the console",
    "qemu.board": "--dtb, --dump-dtb and --flash, when given",
    "session.options": "the scripted session (pexpect), for --exec/--expect",
    "run.recording": "qcow2 creation, for --record",
    "console.relay": "the console server's live check, for a console path in use",
}


def _local_bbv_imports(name: str) -> bool:
    return any(isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith(
        "barebox_virtio_cli") for node in ast.walk(_tree(name))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for sub in ast.walk(node))


def test_own_modules_are_imported_at_the_top_but_to_spare_start_up():
    below = {name for name in MODULES if not name.startswith("commands.") and name != "cli"}
    lazy = {name for name in below if _local_bbv_imports(name)}
    assert lazy == set(LAZY_FOR_START_UP), \
        f"import at the top of the module: {sorted(lazy - set(LAZY_FOR_START_UP))}"
