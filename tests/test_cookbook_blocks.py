"""Every ```python block of every recipe card (cookbook/*.md) runs, in order, in the smoke profile.

A card's blocks share one fresh interpreter (like a reader pasting them one after the other) whose
working directory is an empty temporary folder. A block whose info string holds ``no-run``
(```` ```python no-run ```` or ```` ```python,no-run ````) is shown in the book but not executed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COOKBOOK = REPO / "cookbook"
PYTHON_LANGUAGES = {"python", "py", "python3"}
CARD_TIMEOUT_S = 600

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

# Runs in the child: exec each block in one namespace; on failure, write the block's index to argv[1].
_RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    blocks = json.load(sys.stdin)
    namespace = {"__name__": "__main__"}
    for index, block in enumerate(blocks):
        # Leading newlines make tracebacks point at the card's own line numbers.
        code = compile("\\n" * block["line"] + block["code"], block["file"], "exec")
        try:
            exec(code, namespace)
        except BaseException:
            traceback.print_exc()
            with open(sys.argv[1], "w") as status:
                status.write(str(index))
            sys.exit(1)
    """
)


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence; the code starts on the next line
    info: str
    code: str


def python_blocks(markdown: str) -> list[Block]:
    """The runnable Python fenced blocks of a Markdown text, in order (``no-run`` ones left out)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        if not opened or (opened["fence"][0] == "`" and "`" in opened["info"]):
            index += 1
            continue
        fence, indent, info = opened["fence"], len(opened["indent"]), opened["info"].strip()
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        start = index
        index += 1
        while index < len(lines) and not close.match(lines[index]):
            line = lines[index]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            index += 1
        index += 1  # past the closing fence (or the end of an unclosed block)
        tokens = [token.lower() for token in re.split(r"[\s,]+", info) if token]
        if tokens and tokens[0] in PYTHON_LANGUAGES and "no-run" not in tokens:
            blocks.append(Block(line=start + 1, info=info, code="\n".join(body) + "\n"))
    return blocks


def run_blocks(card: Path, blocks: list[Block], workdir: Path) -> tuple[int | None, str]:
    """Run ``blocks`` of ``card`` in one fresh interpreter; (index of the failed block or None, stderr)."""
    env = dict(os.environ)
    env.update(SSLCOOKBOOK_PROFILE="smoke", MPLBACKEND="Agg")
    env.setdefault("TRITON_INTERPRET", "1")
    status = workdir.parent / f".{workdir.name}-failed-block"
    payload = [{"file": str(card), "line": block.line, "code": block.code} for block in blocks]
    try:
        result = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(status)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            cwd=workdir,
            env=env,
            timeout=CARD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        pytest.fail(
            f"{card.name}: its code blocks did not finish within {CARD_TIMEOUT_S} s\n{stderr[-4000:]}"
        )
    if result.returncode == 0:
        return None, result.stderr
    failed = int(status.read_text()) if status.is_file() else len(blocks) - 1
    return failed, result.stderr


def _cards_with_blocks() -> list[Path]:
    return [card for card in sorted(COOKBOOK.glob("*.md")) if python_blocks(card.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("card", _cards_with_blocks(), ids=lambda card: card.name)
def test_recipe_card_code_blocks_run(card, tmp_path):
    blocks = python_blocks(card.read_text(encoding="utf-8"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    failed, stderr = run_blocks(card, blocks, workdir)
    if failed is not None:
        block = blocks[failed]
        pytest.fail(
            f"cookbook/{card.name}: block {failed + 1} of {len(blocks)} (fence on line {block.line}) failed "
            f"in the smoke profile.\n--- block ---\n{block.code}--- stderr ---\n{stderr[-6000:]}",
            pytrace=False,
        )


# --- the harness itself ---------------------------------------------------------------------------------

_SAMPLE_CARD = """# Card

```python
import os
value = 41
```

Shown only:

```python no-run
raise SystemExit("must not run")
```

```py,no-run
raise SystemExit("must not run either")
```

```sh
exit 1
```

1. In a list:

   ```python
   value += 1
   assert os.environ["SSLCOOKBOOK_PROFILE"] == "smoke"
   open("written-here.txt", "w").write(str(value))
   ```

````python
text = '''
```
not a fence'''
assert value == 42, value
````
"""


def test_python_blocks_are_found_in_order_and_no_run_is_skipped():
    blocks = python_blocks(_SAMPLE_CARD)
    assert [block.line for block in blocks] == [3, 24, 30]
    assert blocks[0].code == "import os\nvalue = 41\n"
    assert blocks[1].code.startswith("value += 1\nassert")  # list indentation removed
    assert "not a fence" in blocks[2].code and blocks[2].code.endswith("assert value == 42, value\n")
    assert not any("must not run" in block.code for block in blocks)


def test_blocks_share_one_interpreter_and_a_failure_names_the_block(tmp_path):
    card = tmp_path / "card.md"
    card.write_text(_SAMPLE_CARD + "\n```python\nassert value == 43, f'value is {value}'\n```\n")
    blocks = python_blocks(card.read_text())
    workdir = tmp_path / "work"
    workdir.mkdir()
    failed, stderr = run_blocks(card, blocks, workdir)
    assert failed == 3
    assert "AssertionError: value is 42" in stderr
    assert f'File "{card}", line 38' in stderr  # the card's own line number
    assert (workdir / "written-here.txt").read_text() == "42"  # earlier blocks ran, in the work dir

    failed, stderr = run_blocks(card, blocks[:3], workdir)
    assert failed is None, stderr
