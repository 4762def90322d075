"""The Python API as the README documents it: its example runs as written (URLs pointed at
temporary folders), and `import recarchive` stays light until the API is used."""

from __future__ import annotations

import hashlib
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recarchive
from recarchive.datasets import data_dir

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Python API section has no python block"
    return match.group(1)


def write_bucket(folder: Path) -> dict[str, bytes]:
    """The four CIFAR-10 fixture PNGs, two under cats/ and two under dogs/."""
    objects = {}
    for number in range(4):
        key = f"{'cats' if number < 2 else 'dogs'}/{number}.png"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((data_dir() / "fixtures" / f"cifar10_test_0{number}.png").read_bytes())
        objects[key] = path.read_bytes()
    return objects


def test_readme_example_runs_as_written(tmp_path, capsys):
    objects = write_bucket(tmp_path / "cifar")
    code = (python_example()
            .replace("file:///data/cifar", (tmp_path / "cifar").as_uri())
            .replace("s3://archives/cifar", str(tmp_path / "archive"))
            .replace("/tmp/cats", str(tmp_path / "restored"))
            .replace("s3://models/", str(tmp_path / "models")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == "4"                     # objects archived
    assert printed[1] == "2 2 []"                           # restored, byte-exact, failed
    assert sorted(line.split()[0] for line in printed[2:]) == sorted(objects)
    assert namespace["manifest"]["settings"]["codec"] == "auto"  # the default
    for key in ("cats/0.png", "cats/1.png"):
        restored = (tmp_path / "restored" / key).read_bytes()
        assert hashlib.sha256(restored).digest() == hashlib.sha256(objects[key]).digest()
    assert not (tmp_path / "restored" / "dogs").exists()


def test_api_names_are_the_functions_the_commands_run():
    api = importlib.import_module("recarchive.api")
    restore_module = importlib.import_module("recarchive.archives.restore")  # not the function

    assert recarchive.archive is api.archive  # the archive package's, with the report
    assert recarchive.restore is restore_module.restore
    assert recarchive.verify is restore_module.verify
    assert {"archive", "restore", "verify", "repair", "list_objects", "open_archive",
            "ArchiveSettings", "ArchiveError"} <= set(dir(recarchive))
    assert set(recarchive.__all__) == {"__version__", *recarchive._API}
    with pytest.raises(AttributeError, match="no attribute 'archiv'"):
        recarchive.archiv  # noqa: B018 - a typo is an AttributeError, not a silent None


def test_importing_the_coding_core_loads_no_archive_stack():
    code = ("import sys, recarchive, recarchive.ans; "
            "sys.exit(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'fsspec') "
            "or m.startswith('recarchive.archives'))[:5] or None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
