"""The host requirements of barebox's test suite (configs/suite/requirements.toml) and what
bbv test and bbv doctor make of them: pure, no probing."""

from __future__ import annotations

import tomllib

import pytest
from conftest import ROOT

from barebox_virtio_cli.doctor.checks import install_hints, suite_checks
from barebox_virtio_cli.errors import BbvError
from barebox_virtio_cli.testsuite.requirements import (
    HostFacts,
    parse_requirements,
    problem,
    suite_tests,
    unmet,
)

pytestmark = pytest.mark.pure

TABLE = ROOT / "configs" / "suite" / "requirements.toml"
TLV = '''
import pytest

def helper():
    pass

def test_tlv_generator(tlv_testdata):
    pass

def test_tlv_cmd_signed(barebox, barebox_config,
                        tlv_cmdtest):
    pass
'''


def shipped():
    return parse_requirements(tomllib.loads(TABLE.read_text()), str(TABLE))


def entry(**fields):
    return {"name": "x", "tests": ["test/py/test_x.py"], **fields}


def test_the_shipped_table_parses_and_says_how_to_meet_each_requirement():
    reqs = shipped()
    assert {r.kind for r in reqs} == {"python", "program", "probe"}
    for req in reqs:
        assert req.how_to_install() != "-", req.name
        assert req.why, req.name
        assert all(t.startswith("test/py/test_") for t in req.tests), req.name


def test_the_python_modules_the_suite_imports_come_with_bbv_labgrid():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = {r.split(">")[0].split("=")[0] for r in
             pyproject["project"]["optional-dependencies"]["labgrid"]}
    for req in shipped():
        if req.kind == "python":
            assert req.pip in extra, req.name
            assert req.how_to_install() == "pip install 'bbv[labgrid]'"


@pytest.mark.parametrize("bad, says", [
    (entry(), "give one of python, program, probe"),
    (entry(python="a", program="b"), "give one of python, program, probe"),
    (entry(program="a", outcome="failed"), "outcome of skipped or error"),
    ({"name": "x", "program": "a"}, "needs name, tests"),
])
def test_a_malformed_entry_is_one_error_naming_the_file(bad, says):
    with pytest.raises(BbvError, match=says) as caught:
        parse_requirements({"requirement": [bad]}, "req.toml")
    assert str(caught.value).startswith("req.toml: requirement 1 (")


def test_each_kind_is_met_by_its_own_fact():
    python, program, probe = parse_requirements({"requirement": [
        entry(python="crcmod.predefined"), entry(program="mkimage"),
        entry(probe="openssl-pubin-private-key")]}, "t")
    nothing = HostFacts()
    assert "crcmod.predefined not importable" in problem(python, nothing)
    assert problem(program, nothing) == "mkimage not on PATH"
    assert problem(probe, nothing) == "probe openssl-pubin-private-key not run"
    facts = HostFacts(modules=frozenset({"crcmod.predefined"}), programs=frozenset({"mkimage"}),
                      probes={"openssl-pubin-private-key": None})
    assert [problem(r, facts) for r in (python, program, probe)] == [None, None, None]
    bad = HostFacts(probes={"openssl-pubin-private-key": "OpenSSL 3.0.2: no"})
    assert problem(probe, bad) == "OpenSSL 3.0.2: no"


def test_a_test_file_stands_for_its_test_functions():
    assert suite_tests("test/py/test_tlv.py", TLV) == [
        "test/py/test_tlv.py::test_tlv_generator", "test/py/test_tlv.py::test_tlv_cmd_signed"]
    assert suite_tests("test/py/test_tlv.py::test_tlv_generator", TLV) == [
        "test/py/test_tlv.py::test_tlv_generator"]
    assert suite_tests("test/py/test_tlv.py", None) == []


def test_the_warning_names_the_tests_what_they_do_and_what_to_install():
    reqs = parse_requirements({"requirement": [
        {"name": "crcmod", "python": "crcmod", "tests": ["test/py/test_tlv.py"], "pip": "crcmod",
         "debian": "python3-crcmod"},
        {"name": "pubin", "probe": "p", "tests": ["test/py/test_tlv.py"], "outcome": "error",
         "fix": "a newer OpenSSL"},
        {"name": "mkimage", "program": "mkimage", "tests": ["test/py/test_fit.py"],
         "debian": "u-boot-tools", "fedora": "uboot-tools"},
    ]}, "t")
    facts = HostFacts(probes={"p": "OpenSSL 3.0.2: pkey -pubin reads no private key"})
    found = unmet(reqs, facts, {"test/py/test_tlv.py": TLV, "test/py/test_fit.py": None})
    assert [u.warning() for u in found] == [
        "Python module crcmod not importable by this Python: test/py/test_tlv.py "
        "(test_tlv_generator, test_tlv_cmd_signed) will be skipped; pip install 'bbv[labgrid]'",
        "OpenSSL 3.0.2: pkey -pubin reads no private key: test/py/test_tlv.py "
        "(test_tlv_generator, test_tlv_cmd_signed) will error; a newer OpenSSL",
    ]  # mkimage: the tree has no test_fit.py, so nothing goes without it
    assert [u.requirement.name for u in unmet(reqs, facts)] == ["crcmod", "pubin", "mkimage"]
    met = HostFacts(modules=frozenset({"crcmod"}), programs=frozenset({"mkimage"}),
                    probes={"p": None})
    assert unmet(reqs, met, {"test/py/test_tlv.py": TLV}) == []


def test_a_requirement_of_testfs_tests_is_unmet_only_where_an_env_has_testfs():
    reqs = parse_requirements({"requirement": [
        {"name": "pubin", "probe": "p", "tests": ["test/py/test_tlv.py"], "outcome": "error",
         "features": ["testfs"]},
        {"name": "mkimage", "program": "mkimage", "tests": ["test/py/test_fit.py"]},
    ]}, "t")
    facts = HostFacts(probes={"p": "OpenSSL 3.0.2: no"})
    sources = {"test/py/test_tlv.py": TLV, "test/py/test_fit.py": TLV}
    assert reqs[0].features == ("testfs",) and reqs[1].features == ()
    names = [u.requirement.name for u in unmet(reqs, facts, sources, lambda f: False)]
    assert names == ["mkimage"]  # the tlv tests skip without testfs: no error to warn of
    names = [u.requirement.name for u in unmet(reqs, facts, sources, {"testfs"}.__contains__)]
    assert names == ["pubin", "mkimage"]
    assert [u.requirement.name for u in unmet(reqs, facts, sources)] == ["pubin", "mkimage"]


def test_the_shipped_suite_requirements_of_testfs_tests_name_testfs():
    for req in shipped():
        if any(t.split("::")[0] in ("test/py/test_tlv.py", "test/py/test_fit.py",
                                    "test/py/test_dm.py") for t in req.tests):
            assert req.features == ("testfs",), req.name


def test_doctor_shows_each_requirement_and_installs_packages_not_pip_modules():
    reqs = shipped()
    checks = suite_checks(reqs, HostFacts(probes={"openssl-pubin-private-key": "OpenSSL 3.0"}))
    assert [c.item for c in checks] == [r.name for r in reqs]
    assert {c.scope for c in checks} == {"suite"}
    assert not any(c.ok for c in checks)
    crcmod = next(c for c in checks if c.item == "crcmod")
    assert crcmod.packages == {} and "pip install 'bbv[labgrid]'" in crcmod.detail
    pubin = next(c for c in checks if c.item.startswith("openssl pkey"))
    assert "test/py/test_tlv.py error" in pubin.detail and "newer than 3.0" in pubin.detail
    debian = install_hints(checks)["debian"].split()
    assert "u-boot-tools" in debian and "python3-crcmod" not in debian
