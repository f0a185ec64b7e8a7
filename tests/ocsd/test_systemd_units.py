"""The unit files in ``systemd/`` as systemd itself reads them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").iterdir())
INSTALLED = "/opt/ocsd/.venv/bin/ocsd"


def _verify(directory: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("OCSD_REQUIRE_SERVICES") == "1":
            pytest.fail("systemd-analyze (package systemd) is not installed")
        pytest.skip("systemd-analyze is not installed")
    return subprocess.run(
        [tool, "verify", *sorted(str(p) for p in directory.iterdir())],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _installed_copy(tmp_path: Path, ocsd: str) -> Path:
    """The units as the README installs them, with ExecStart pointing at ``ocsd``."""
    target = tmp_path / "units"
    target.mkdir()
    for unit in UNITS:
        (target / unit.name).write_text(unit.read_text().replace(INSTALLED, ocsd))
    return target


def _ocsd_script(tmp_path: Path) -> str:
    script = tmp_path / "ocsd"
    script.write_text(f"#!{sys.executable}\nfrom ocsd.cli import main\nraise SystemExit(main())\n")
    script.chmod(0o755)
    return str(script)


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} >= {
        "ocsd.service",
        "ocsd-cdr-writer.service",
        "ocsd-housekeeping.service",
        "ocsd-housekeeping.timer",
    }
    done = _verify(_installed_copy(tmp_path, _ocsd_script(tmp_path)))
    # Unknown keys and other mistakes are warnings with exit status 0: any output fails.
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    units = _installed_copy(tmp_path, _ocsd_script(tmp_path))
    service = units / "ocsd.service"
    service.write_text(service.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    done = _verify(units)
    assert "Unknown key" in done.stdout + done.stderr


def test_the_service_is_sandboxed_and_notifies() -> None:
    text = (ROOT / "systemd" / "ocsd.service").read_text()
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["Type"] == "notify"
    # SIGTERM for the main process alone: the workers get theirs from it, once.
    assert settings["KillMode"] == "mixed"
    assert int(settings["WatchdogSec"]) > 0
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ReadWritePaths"] == "/var/lib/ocsd"
    assert settings["User"] == "ocsd"
    assert "AmbientCapabilities" not in settings
