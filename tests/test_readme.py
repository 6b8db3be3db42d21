"""The README as a test: its fenced ``bash`` and ``python`` blocks run in order, as written.

Blocks run in a fresh folder holding copies of ``configs/`` and ``scripts/`` (as after a
clone), one after the other, so a block may use what the blocks above it wrote. Sizes are
reduced by ONE mechanism, the table :data:`SIZE_CAPS` (documented in the README's "The README
is a test" section): every number given to one of these settings, in a block or in a copied
config file, is capped. Nothing else in the text is changed.

A block directly below the line ``<!-- readme-test: skip -->`` is not run (long benchmarks,
commands that need outside files); the test lists them. ``pdeml ...`` commands run in this
process through :func:`pdeml.cli.main` (a fresh interpreter per command would spend most of the
test importing torch); every other shell command runs in ``bash``. A failure names the README
line of the block and of the command.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
RUN_LANGS = ("bash", "python")

# setting -> cap. Matches `key=N`, `key: N`, `--key N` (`_` or `-` in the key) and, for the
# split names, Python dict entries `"train": N`.
SIZE_CAPS: dict[str, int] = {
    "n_train": 8, "n_val": 4, "n_test": 4, "train": 8, "val": 4, "test": 4,
    "max_epochs": 2, "epochs": 1, "resolution": 16, "capacity": 32, "watermark": 8,
    "batches_per_epoch": 2, "norm_samples": 8,
}
SPLITS = ("train", "val", "test")


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    skip: bool

    @property
    def label(self) -> str:
        return f"README.md line {self.line} ({self.lang} block)"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of the README with its language, line and skip marker."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        skip = start > 0 and lines[start - 1].strip() == SKIP_MARK
        blocks.append(Block(m.group(1), start + 1, "\n".join(lines[start + 1:j]), skip))
        i = j + 1
    return blocks


def shrink(text: str) -> str:
    """Cap the sizes of :data:`SIZE_CAPS` in ``text``; nothing else changes."""
    def cap(m: re.Match[str]) -> str:
        key = m.group("key").replace("-", "_")
        value = min(int(m.group("value")), SIZE_CAPS[key])
        return f"{m.group('head')}{value}"

    keys = "|".join(sorted((k for k in SIZE_CAPS if k not in SPLITS), key=len, reverse=True))
    keys_re = keys.replace("_", "[_-]")
    text = re.sub(rf"(?P<head>(?<![\w-])(?:--)?(?P<key>{keys_re})[\"']?(?:\s*[=:]\s*|\s+))"
                  r"(?P<value>\d+)\b", cap, text)
    return re.sub(r"(?P<head>[\"'](?P<key>train|val|test)[\"']\s*:\s*)(?P<value>\d+)\b",
                  cap, text)


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """The block's commands (continuation lines joined) with their README line numbers."""
    commands, pending, first = [], "", 0
    for k, raw in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + 1 + k
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        command = (pending + raw).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append((first, command))
    return commands


BLOCKS = [b for b in readme_blocks(README.read_text()) if b.lang in RUN_LANGS]
_state: dict[str, str | None] = {"failed": None}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A fresh folder with shrunk copies of configs/ and scripts/; the cwd while blocks run."""
    root = tmp_path_factory.mktemp("readme")
    for folder in ("configs", "scripts"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / folder)
    for path in (root / "configs").rglob("*.yaml"):
        path.write_text(shrink(path.read_text()))
    previous = Path.cwd()
    os.chdir(root)
    yield root
    os.chdir(previous)


def _run_pdeml(argv: list[str], capfd) -> tuple[int, str]:
    from pdeml.cli import main

    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse errors and --help
        rc = exit_.code if isinstance(exit_.code, int) else 1
    err = capfd.readouterr().err
    return rc, err


def _run_shell(command: str, root: Path) -> tuple[int, str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(["bash", "-e", "-c", command], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stderr + proc.stdout


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


@pytest.mark.parametrize("block", BLOCKS, ids=[f"L{b.line}-{b.lang}" for b in BLOCKS])
def test_readme_block(block: Block, workspace: Path, capfd) -> None:
    if block.skip:
        pytest.skip(f"{block.label}: marked {SKIP_MARK}")
    if _state["failed"]:
        pytest.skip(f"an earlier block failed: {_state['failed']}")
    _state["failed"] = block.label
    if block.lang == "python":
        # Padding keeps traceback line numbers equal to README line numbers.
        code = compile("\n" * block.line + shrink(block.text), str(README), "exec")
        try:
            exec(code, {"__name__": "__readme__"})
        except Exception:
            pytest.fail(f"{block.label} raised:\n{_tail(traceback.format_exc())}", pytrace=False)
    else:
        for line, command in shell_commands(block):
            small = shrink(command)
            argv = shlex.split(small, comments=True)
            if argv and argv[0] == "pdeml":
                rc, err = _run_pdeml(argv[1:], capfd)
            else:
                rc, err = _run_shell(small, workspace)
            if rc != 0:
                pytest.fail(f"{block.label}, command at line {line} exited {rc}:\n"
                            f"  {small}\n{_tail(err)}", pytrace=False)
    _state["failed"] = None


def test_shrink_caps_only_the_listed_sizes() -> None:
    text = ('pdeml generate darcy --set resolution=64 --n-train 1000 --n-test 2 --seed 7\n'
            'trainer.max_epochs=20 "train": 1000, "test": 200, n_layers=4 capacity: 1024\n'
            'x.resolution: 3 hidden_channels: 32 --epochs 30 --set trainer.max_epochs=1\n'
            '{"resolution": 32, "solver": "direct"}')
    assert shrink(text) == (
        'pdeml generate darcy --set resolution=16 --n-train 8 --n-test 2 --seed 7\n'
        'trainer.max_epochs=2 "train": 8, "test": 4, n_layers=4 capacity: 32\n'
        'x.resolution: 3 hidden_channels: 32 --epochs 1 --set trainer.max_epochs=1\n'
        '{"resolution": 16, "solver": "direct"}')


def test_blocks_and_skip_marker_are_found() -> None:
    text = "a\n```bash\necho 1 \\\n  2\n```\n" + SKIP_MARK + "\n```python\nx = 1\n```\n"
    blocks = readme_blocks(text)
    assert [(b.lang, b.line, b.skip) for b in blocks] == [("bash", 2, False), ("python", 7, True)]
    assert shell_commands(blocks[0]) == [(3, "echo 1    2")]
