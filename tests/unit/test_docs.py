"""The documentation site (docs/, mkdocs.yml) against the commands it documents: every command
has a page that renders its real --help, every option of a command is described in its page's
prose, no page names an option bbv does not have, and README stays the short front door.
`mkdocs build --strict` (tests/run.sh) checks links, anchors and the navigation."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click
import pytest
import yaml
from conftest import ROOT, bbv

from barebox_virtio_cli.cli import COMMANDS, cli

pytestmark = pytest.mark.pure

DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- bbv-help: ([a-z-]+) -->$", re.MULTILINE)

# The page that describes a command's options, and the guides that describe some of them.
PAGES = {
    "toolchains": ["commands/toolchain.md"],
    "run": ["commands/run.md", "testing.md", "debugging.md", "console-server.md"],
    "gdb": ["commands/gdb.md", "debugging.md"],
    "export": ["commands/export.md", "lava-labgrid.md"],
    "lava": ["commands/lava.md", "lava-farm.md"],
}

# Options of other tools that the pages name (pytest, labgrid, lava-run, sfdisk, the
# benchmark scripts, mkdocs): anything else spelt like an option must be one of bbv's.
FOREIGN = {"--lg-env", "--junitxml", "--job-id", "--device", "--output-dir", "--dump", "--runs",
           "--strict"}
# The LAVA farm's set-up (apt-get, postinst.py, lava-server manage, gunicorn, lava-worker,
# lavacli) and its benchmark, on lava-farm.md.
FOREIGN |= {"--no-install-recommends", "--config", "--db", "--fixup", "--superuser", "--staff",
            "--user", "--secret", "--worker", "--bind", "--workers", "--host", "--port",
            "--log-file", "--event-url", "--name", "--ws-url", "--worker-dir", "--ping-interval",
            "--uri", "--username", "--repeat", "--rounds"}
# pytest's options barebox's CI workflow passes (bbv test --ci, on commands/test.md).
FOREIGN |= {"--verbosity", "--runxfail", "--lg-log"}
# benchmarks/ci.py's options (benchmarks.md).
FOREIGN |= {"--makeall-dir", "--bbv-dir"}
# git checkout's, for bbv bisect's tree (commands/bisect.md), and its benchmark's (benchmarks.md).
FOREIGN |= {"--detach", "--sides"}


def pages_of(name: str) -> list[Path]:
    return [DOCS / page for page in PAGES.get(name, [f"commands/{name}.md"])]


def context(name: str) -> tuple[click.Command, click.Context]:
    root = click.Context(cli, info_name="bbv", **cli.context_settings)
    command = cli.get_command(root, name)
    return command, click.Context(command, info_name=name, parent=root)


def options(command: click.Command, ctx: click.Context) -> set[str]:
    """Every option spelling of the command and of its subcommands."""
    names = {opt for param in command.get_params(ctx) for opt in param.opts + param.secondary_opts
             if opt.startswith("-")}
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            names |= options(child, click.Context(child, info_name=sub, parent=ctx))
    return names


def nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in nav_files(value)]
    return [f for item in nav for f in nav_files(item)]


def all_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


class ConfigLoader(yaml.SafeLoader):
    """mkdocs.yml with mkdocs' own tags (`!relative`) read as plain values."""


ConfigLoader.add_multi_constructor("!", lambda loader, tag, node: None)


def test_every_page_is_in_the_navigation_and_every_entry_exists():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=ConfigLoader)
    nav = nav_files(config["nav"])
    assert sorted(nav) == sorted(str(p.relative_to(DOCS)) for p in all_pages())


def test_every_command_renders_its_help_on_one_page():
    rendered: dict[str, list[str]] = {}
    for page in all_pages():
        for name in MARKER.findall(page.read_text()):
            rendered.setdefault(name, []).append(str(page.relative_to(DOCS)))
    assert set(rendered) == {"bbv", *COMMANDS}
    assert all(len(where) == 1 for where in rendered.values()), rendered
    for name in COMMANDS:
        assert rendered[name][0] == str(pages_of(name)[0].relative_to(DOCS))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_described_on_its_page(name):
    text = "".join(MARKER.sub("", page.read_text()) for page in pages_of(name))
    missing = sorted(opt for opt in options(*context(name))
                     if opt.startswith("--") and opt != "--help"
                     and not re.search(re.escape(opt) + r"(?![\w-])", text))
    assert not missing, f"describe {', '.join(missing)} on {pages_of(name)[0]}"


def test_pages_name_only_options_bbv_has():
    known = options(cli, click.Context(cli, info_name="bbv", **cli.context_settings))
    for name in COMMANDS:
        known |= options(*context(name))
    stale = {}
    for page in [*all_pages(), ROOT / "README.md"]:
        for token in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", page.read_text()):
            if token not in known | FOREIGN:
                stale.setdefault(token, set()).add(page.name)
    assert not stale, f"options no bbv command has: {stale}"


def load_hook():
    spec = importlib.util.spec_from_file_location("bbv_help", DOCS / "hooks" / "bbv_help.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["run", "export", "toolchains"])
def test_the_site_shows_what_help_prints(name):
    pytest.importorskip("mkdocs", reason="the docs tools (pip install '.[docs]')")
    text = load_hook().help_text(name)
    command, ctx = context(name)
    commands = [[name]] + [[name, sub] for sub in (command.list_commands(ctx)
                                                   if isinstance(command, click.Group) else [])]
    for argv in commands:
        result = bbv(*argv, "--help", env={"COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        printed = result.stdout.rstrip("\n").replace(str(Path.home()), "~")
        assert f"$ bbv {' '.join(argv)} --help\n{printed}\n```" in text


def test_readme_is_the_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block == "pip install . && bbv quickstart\nbash tests/run.sh\n"
    assert text.index("```sh") < text.index("\n## ")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert links, "README links to the site's pages"
    for link in links:
        assert (ROOT / link).is_file(), link
