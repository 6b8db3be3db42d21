"""The README and the documentation as a test: their fenced ``bash`` and ``python`` blocks run.

The files run in the order of :data:`DOC_ORDER`: ``README.md`` first, then every page of the
documentation site in the order of ``nav`` in ``mkdocs.yml``, each page's blocks top to
bottom. All of them run in ONE fresh folder holding copies of ``configs/`` and ``scripts/`` (as
after a clone), one after the other, so a block may use what the README or an earlier page
wrote. Sizes are reduced by ONE mechanism, the table :data:`SIZE_CAPS` (documented in
``docs/design.md``, "The documentation is a test"): every number given to one of these
settings, in a block or in a copied config file, is capped. Nothing else in the text is
changed.

A block directly below the line ``<!-- readme-test: skip -->`` is not run (long benchmarks,
commands that need outside files); the test lists them. A shell command, or a whole ``python``
block, identical (after capping) to one that already ran earlier in the sequence is not run
again: the per-verb pages repeat commands of the README's walk-through, and a second run would
only meet the first one's outputs. ``pdeml ...`` commands run in this process through
:func:`pdeml.cli.main` (a fresh interpreter per command would spend most of the test importing
torch); every other shell command runs in ``bash``. A failure names the file and line of the
block and of the command.
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MKDOCS = ROOT / "mkdocs.yml"
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


def nav_pages(nav: list) -> list[str]:
    """The Markdown files of an mkdocs ``nav`` (nested sections flattened), in order."""
    pages: list[str] = []
    for entry in nav:
        items = entry.values() if isinstance(entry, dict) else [entry]
        for item in items:
            if isinstance(item, list):
                pages += nav_pages(item)
            elif isinstance(item, str) and item.endswith(".md"):
                pages.append(item)
    return pages


def doc_order() -> list[str]:
    """README.md, then the site's pages (``docs/...``) in the order of mkdocs.yml's nav."""
    config = yaml.safe_load(MKDOCS.read_text()) if MKDOCS.is_file() else {}
    docs_dir = config.get("docs_dir", "docs")
    return ["README.md"] + [f"{docs_dir}/{page}" for page in nav_pages(config.get("nav", []))]


#: The files whose blocks run, in the order they run (a page may rely on an earlier one).
DOC_ORDER = doc_order()


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    skip: bool
    source: str = "README.md"

    @property
    def label(self) -> str:
        return f"{self.source} line {self.line} ({self.lang} block)"


def readme_blocks(text: str, source: str = "README.md") -> list[Block]:
    """Every fenced block of a Markdown file with its language, line and skip marker."""
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
        blocks.append(Block(m.group(1), start + 1, "\n".join(lines[start + 1:j]), skip, source))
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
    """The block's commands (continuation lines joined) with their line numbers in its file."""
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


def all_blocks(order: list[str] = DOC_ORDER) -> list[Block]:
    """The runnable blocks of every file of ``order``, in the order they run."""
    return [b for source in order for b in readme_blocks((ROOT / source).read_text(), source)
            if b.lang in RUN_LANGS]


BLOCKS = all_blocks()
_state: dict[str, str | None] = {"failed": None}
_ran: dict[str, str] = {}  # command (or python block) after capping -> where it ran first


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


def _block_id(block: Block) -> str:
    stem = block.source.removeprefix("docs/").removesuffix(".md").replace("/", "-")
    return f"{stem}-L{block.line}-{block.lang}"


@pytest.mark.parametrize("block", BLOCKS, ids=[_block_id(b) for b in BLOCKS])
def test_readme_block(block: Block, workspace: Path, capfd) -> None:
    if block.skip:
        pytest.skip(f"{block.label}: marked {SKIP_MARK}")
    if _state["failed"]:
        pytest.skip(f"an earlier block failed: {_state['failed']}")
    _state["failed"] = block.label
    if block.lang == "python":
        text = shrink(block.text)
        if text in _ran:
            _state["failed"] = None
            pytest.skip(f"{block.label}: the same block ran at {_ran[text]}")
        # Padding keeps traceback line numbers equal to the file's line numbers.
        code = compile("\n" * block.line + text, str(ROOT / block.source), "exec")
        try:
            exec(code, {"__name__": "__readme__"})
        except Exception:
            pytest.fail(f"{block.label} raised:\n{_tail(traceback.format_exc())}", pytrace=False)
        _ran[text] = block.label
    else:
        commands = [(line, shrink(command)) for line, command in shell_commands(block)]
        new = [(line, small) for line, small in commands if small not in _ran]
        if commands and not new:
            _state["failed"] = None
            pytest.skip(f"{block.label}: every command ran already (first at "
                        f"{_ran[commands[0][1]]})")
        for line, small in new:
            argv = shlex.split(small, comments=True)
            if argv and argv[0] == "pdeml":
                rc, err = _run_pdeml(argv[1:], capfd)
            else:
                rc, err = _run_shell(small, workspace)
            if rc != 0:
                pytest.fail(f"{block.label}, command at line {line} exited {rc}:\n"
                            f"  {small}\n{_tail(err)}", pytrace=False)
            _ran[small] = f"{block.source} line {line}"
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


def test_doc_order_starts_with_the_readme_and_follows_the_nav() -> None:
    nav = [{"Home": "index.md"}, {"Guide": [{"A": "guide/a.md"}, "guide/b.md"]}, "z.md"]
    assert nav_pages(nav) == ["index.md", "guide/a.md", "guide/b.md", "z.md"]
    assert DOC_ORDER[0] == "README.md"
    assert len(set(DOC_ORDER)) == len(DOC_ORDER)
    assert all((ROOT / source).is_file() for source in DOC_ORDER)
