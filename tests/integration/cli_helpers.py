"""The `dialler` CLI as integration tests drive it: a minimal config around a test database,
and the command run in a subprocess exactly as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

AMI_SECRET_ENV = "DIALLER_TEST_AMI_SECRET"
AGI_SECRET_ENV = "DIALLER_TEST_AGI_SECRET"
#: The FastAGI secret every test config reads from AGI_SECRET_ENV (required by the config).
AGI_SECRET = "agi-secret-for-tests-0123"
#: The `listeners` section of the test configs: the FastAGI secret from the environment.
LISTENERS_YAML = "listeners:\n  agi: {secret_env: " + AGI_SECRET_ENV + "}\n"


def write_config(directory: Path, dsn: str, numbers: str = "") -> Path:
    """The smallest valid config file around `dsn` (`numbers`: YAML list items, if any)."""
    path = directory / "dialler.yaml"
    path.write_text(
        "database:\n"
        f'  dsn: "{dsn}"\n'
        "asterisk:\n"
        "  - name: test\n"
        "    ami:\n"
        "      username: dialler\n"
        f"      secret_env: {AMI_SECRET_ENV}\n"
        "carriers:\n"
        "  - name: lab\n" + LISTENERS_YAML + (f"numbers:\n{numbers}" if numbers else ""),
        encoding="utf-8",
    )
    return path


async def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """`python -m dialler.cli ARGS...`: (exit code, stdout, stderr); the AMI secret set, no
    $DIALLER_CONFIG inherited."""
    env = {**os.environ, AMI_SECRET_ENV: "not-used", AGI_SECRET_ENV: AGI_SECRET}
    env.pop("DIALLER_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialler.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
