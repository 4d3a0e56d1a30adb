"""mdBook preprocessor that turns the cookbook's Jupyter notebooks into book chapters.

``book.toml`` registers it as ``[preprocessor.notebooks] command = "python -m sslcookbook.book"``.
mdBook (0.5) runs the command without a shell, from the book root, so the ``python`` first on
``PATH`` must be able to import ``sslcookbook`` (``make book`` puts ``.venv/bin`` first).

The chapter mapping: every chapter of ``cookbook/SUMMARY.md`` whose path is ``notebooks/<stem>.md``
is filled with ``<stem>.ipynb`` converted to Markdown. The page ``cookbook/notebooks/<stem>.md`` is a
committed placeholder (mdBook needs the file to exist; draft chapters ``[x]()`` get no page at all)
and its text is replaced entirely. The notebook is looked up first in the folder of executed copies
(key ``executed``, default ``build/notebooks``, filled by ``jupyter nbconvert --execute``), then in
the folder of committed, output-free notebooks (key ``notebooks``, default ``notebooks``); both are
relative to the book root. A missing notebook leaves a note in its chapter and a warning on stderr.

Math, in the notebooks and in every other page, is rendered to MathML here, at build time, so the book
needs no MathJax and no network (``mathjax-support`` is off in ``book.toml``); a formula latex2mathml
cannot convert is shown as its TeX source and named in a warning on stderr.

Protocol (mdBook 0.5): ``python -m sslcookbook.book supports <renderer>`` exits 0 for ``html`` and
``markdown``; without arguments it reads ``[context, book]`` JSON on stdin and writes the book JSON,
whose chapters live under ``items`` (``sections`` before mdBook 0.5; both are accepted), on stdout.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

try:
    from latex2mathml.converter import convert as _latex_to_mathml
except ImportError:  # the book extra is not installed; tex_to_mathml says how to install it
    _latex_to_mathml = None

SUPPORTED_RENDERERS = ("html", "markdown")
DEFAULT_NOTEBOOKS = "notebooks"
DEFAULT_EXECUTED = "build/notebooks"
CHAPTER_PREFIX = "notebooks/"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# Reprs that only say an object exists (``<Figure size 640x480 with 1 Axes>``, ``[<... at 0x7f...>]``).
_OBJECT_REPR = re.compile(r"^\[?(?:<(?:Figure size [^<>]*|[^<>]* at 0x[0-9a-fA-F]+)>[,\s]*)+\]?$")
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_WIDGET_NOTE = "*Interactive controls are not shown in the book: run the notebook to use them.*"
# Widget models that hold no controls a reader would miss in a static page.
_PASSIVE_WIDGETS = {"OutputModel", "HTMLModel", "LabelModel", "FloatProgressModel", "IntProgressModel"}
# Tokens of Markdown prose, tried left to right at each position: code spans first (their `$` and `\(`
# stay code), mdBook's escaped delimiters before the plain ones, a Markdown escape (`\$`, `\*`) before `$`.
# A formula never runs past the end of its paragraph: an unclosed `\(` stays text.
_NO_BLANK_LINE = r"(?:(?!\n[ \t]*\n).)+?"
_PROSE_TOKEN = re.compile(
    r"(?:(?P<code>(?<!`)(`+)(?!`).+?(?<!`)\2(?!`))"
    rf"|\\\\\[(?P<md_display>{_NO_BLANK_LINE})\\\\\]"
    rf"|\\\\\((?P<md_inline>{_NO_BLANK_LINE})\\\\\)"
    rf"|\\\[(?P<tex_display>{_NO_BLANK_LINE})\\\]"
    rf"|\\\((?P<tex_inline>{_NO_BLANK_LINE})\\\)"
    rf"|(?P<env>\\begin\{{(?P<envname>[A-Za-z]+\*?)\}}{_NO_BLANK_LINE}\\end\{{(?P=envname)\}})"
    r"|(?P<escape>\\[^A-Za-z0-9\s])"
    rf"|\$\$(?P<display>{_NO_BLANK_LINE})\$\$"
    # Pandoc's rule: no space inside the dollars and no digit after the closing one, so "$5 and $10" is text.
    r"|(?<!\$)\$(?P<inline>(?=\S)(?:\\.|[^\\$\n])+?(?<=\S))\$(?!\d))"
    # Punctuation right after a formula, kept on its line (a browser may break after an inline <math>).
    r"(?P<trail>[.,;:!?)]+)?",
    re.DOTALL,
)
# Inside mdBook's `\\( \\)` math, authors escape what Markdown would eat: `\_`, `\*`, `\\#`. Other
# backslash pairs (`\,`, `\{`, `\|`) are TeX and stay.
_MDBOOK_UNESCAPE = re.compile(r"\\([\\_*`])")
# Characters of a MathML text node that Markdown would still parse (emphasis, links, escapes, table cells).
_MARKDOWN_ACTIVE = re.compile(r"[\\`*_\[\]|~$!]")
_UNKNOWN_COMMAND = re.compile(r">[^<]*\\[A-Za-z]+[^<]*<")
# TeX operators latex2mathml 3.81 does not know (it would print them as a backslash and letters).
_MISSING_OPERATORS = re.compile(r"\\(arg)(?![A-Za-z])")
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def _text(value: str | list[str] | None) -> str:
    """Notebook JSON stores multi-line strings either whole or as a list of lines."""
    if value is None:
        return ""
    return value if isinstance(value, str) else "".join(value)


def _fence(body: str, info: str = "") -> str:
    """A fenced block around ``body``, with a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body.rstrip(chr(10))}\n{fence}"


def _clean_terminal_text(text: str) -> str:
    """Drop ANSI colours and keep what a terminal would show after carriage returns (progress bars)."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


class MathConversionError(ValueError):
    """A formula that latex2mathml cannot turn into MathML."""


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML (one line, safe inside Markdown) for the TeX formula ``tex``, via latex2mathml.

    Raises MathConversionError where latex2mathml fails, the braces do not balance, or a command is
    unknown to it (latex2mathml would print ``\\foo`` as a letter).
    """
    if _latex_to_mathml is None:
        raise ImportError(
            "the book renders math with latex2mathml: pip install -e '.[book]' (or pip install latex2mathml)"
        )
    depth = 0
    for match in re.finditer(r"\\.|[{}]", tex):
        depth += {"{": 1, "}": -1}.get(match.group(0), 0)
        if depth < 0:
            break
    if depth != 0:
        raise MathConversionError("unbalanced braces")
    try:
        mathml = _latex_to_mathml(
            _MISSING_OPERATORS.sub(r"\\operatorname{\1}", tex.strip()),
            display="block" if display else "inline",
        )
    except Exception as err:  # latex2mathml raises its own exception types and IndexError/KeyError alike
        raise MathConversionError(f"{type(err).__name__} {err}".strip()) from err
    unknown = _UNKNOWN_COMMAND.search(mathml)
    if unknown:
        command = re.search(r"\\[A-Za-z]+", unknown.group(0))
        raise MathConversionError(f"unknown command {command.group(0) if command else ''}")
    mathml = mathml.replace("\n", " ")
    return re.sub(
        r">([^<]+)<",
        lambda m: ">" + _MARKDOWN_ACTIVE.sub(lambda c: f"&#{ord(c.group(0))};", m.group(1)) + "<",
        mathml,
    )


def _math_fallback(tex: str) -> str:
    """The formula's source in a code span (visible, monospace) when it cannot be converted."""
    text = _MARKDOWN_ACTIVE.sub(lambda c: f"&#{ord(c.group(0))};", html.escape(" ".join(tex.split())))
    return f'<code class="math-fallback" title="formula not converted to MathML">{text}</code>'


def _mathml_prose(text: str, failures: list[str] | None) -> str:
    def render(tex: str, display: bool) -> str:
        try:
            return tex_to_mathml(tex, display=display)
        except MathConversionError as err:
            if failures is not None:
                failures.append(f"{' '.join(tex.split())} ({err})")
            return _math_fallback(tex)

    def replace(match: re.Match[str]) -> str:
        if match.group("code") or match.group("escape"):
            return match.group(0)
        trail = match.group("trail") or ""
        for group, display, unescape in (
            ("md_display", True, True),
            ("md_inline", False, True),
            ("tex_display", True, False),
            ("tex_inline", False, False),
            ("display", True, False),
            ("inline", False, False),
        ):
            tex = match.group(group)
            if tex is not None:
                formula = render(_MDBOOK_UNESCAPE.sub(r"\1", tex) if unescape else tex, display)
                break
        else:
            formula, display = render(match.group("env"), True), True
        if trail and not display:
            return f'<span style="white-space: nowrap">{formula}{trail}</span>'
        return formula + trail

    return _PROSE_TOKEN.sub(replace, text)


def markdown_math_to_mathml(markdown: str, failures: list[str] | None = None) -> str:
    """Render the math of Markdown prose as MathML at build time, so the book needs no MathJax (no network).

    Delimiters: Jupyter's ``$...$`` and ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]``, a bare
    ``\\begin{env}...\\end{env}``, and mdBook's ``\\\\(...\\\\)`` / ``\\\\[...\\\\]`` (inside those, the
    Markdown escapes ``\\_``, ``\\*``, ``\\\\`` are undone first). ``$5 and $10`` is not math (Pandoc's
    rule), and code spans, fenced blocks and escaped dollars ``\\$`` are left alone. A formula that
    cannot be converted stays visible as its TeX source in ``<code class="math-fallback">`` and is
    appended, with the reason, to ``failures``.
    """
    out: list[str] = []
    prose: list[str] = []
    fence: tuple[str, int] | None = None
    for line in markdown.splitlines(keepends=True):
        if fence is None:
            opened = _FENCE_OPEN.match(line.rstrip("\n"))
            if opened and not (opened.group(2)[0] == "`" and "`" in opened.group(3)):
                out.append(_mathml_prose("".join(prose), failures))
                prose = []
                fence = (opened.group(2)[0], len(opened.group(2)))
                out.append(line)
            else:
                prose.append(line)
        else:
            out.append(line)
            char, length = fence
            if re.fullmatch(rf" {{0,3}}{re.escape(char)}{{{length},}}\s*", line.rstrip("\n")):
                fence = None
    out.append(_mathml_prose("".join(prose), failures))
    return "".join(out)


def _image_tag(mime: str, data: str | list[str], metadata: dict[str, Any]) -> str:
    payload = "".join(_text(data).split())
    size = metadata.get(mime, {}) if isinstance(metadata.get(mime), dict) else {}
    attrs = "".join(f' {key}="{int(size[key])}"' for key in ("width", "height") if key in size)
    return f'<img src="data:{mime};base64,{payload}"{attrs} alt="output">'


def _widget_tree(model_id: str, widgets: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(model name, state) of a widget and all its descendants, depth first."""
    model = widgets.get(model_id)
    if not model:
        return
    state = model.get("state", {})
    yield model.get("model_name", ""), state
    for child in state.get("children", []) or []:
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            yield from _widget_tree(child[len("IPY_MODEL_") :], widgets)


def _progress_line(model_id: str, widgets: dict[str, Any]) -> str | None:
    """A tqdm-style text line for a box holding a progress bar (tqdm.auto in a notebook), else None."""
    children = widgets.get(model_id, {}).get("state", {}).get("children", []) or []
    parts: list[str] = []
    has_bar = False
    for child in children:
        model = widgets.get(str(child).removeprefix("IPY_MODEL_"), {})
        name, state = model.get("model_name", ""), model.get("state", {})
        if name in ("FloatProgressModel", "IntProgressModel"):
            low, high = float(state.get("min", 0) or 0), float(state.get("max", 100) or 100)
            fraction = (float(state.get("value", 0) or 0) - low) / (high - low) if high > low else 0.0
            filled = round(10 * min(max(fraction, 0.0), 1.0))
            parts.append("█" * filled + " " * (10 - filled))
            has_bar = True
        elif name in ("HTMLModel", "LabelModel"):
            value = html.unescape(re.sub(r"<[^>]+>", "", str(state.get("value", ""))))
            parts.append(value.replace("\u2007", " "))
    return "|".join(parts).strip() if has_bar else None


def _widget_output(data: dict[str, Any], widgets: dict[str, Any], language: str) -> list[str]:
    """What a static page can show of a widget: its Output areas and progress bars, plus a note."""
    model_id = data[_WIDGET_VIEW].get("model_id", "")
    if model_id not in widgets:
        return [_WIDGET_NOTE]
    progress = _progress_line(model_id, widgets)
    if progress is not None:
        return [_fence(progress, "text")]
    parts: list[str] = []
    has_controls = False
    for name, state in _widget_tree(model_id, widgets):
        if name == "OutputModel":
            parts.extend(_outputs_to_markdown(state.get("outputs", []), widgets, language))
        elif not name.endswith("BoxModel") and name not in _PASSIVE_WIDGETS:
            has_controls = True
    if has_controls or not parts:
        parts.append(_WIDGET_NOTE)
    return parts


def _rich_output(output: dict[str, Any], widgets: dict[str, Any], language: str) -> list[str]:
    data: dict[str, Any] = output.get("data", {})
    metadata: dict[str, Any] = output.get("metadata", {})
    if _WIDGET_VIEW in data:
        return _widget_output(data, widgets, language)
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data:
            return [_image_tag(mime, data[mime], metadata)]
    if "image/svg+xml" in data:
        return ["<div>\n" + re.sub(r"\n\s*\n", "\n", _text(data["image/svg+xml"]).strip()) + "\n</div>"]
    if "text/markdown" in data:
        return [_text(data["text/markdown"]).strip()]
    rich_html = _text(data.get("text/html", ""))
    if rich_html and "<script" not in rich_html.lower():
        return ["<div>\n" + re.sub(r"\n\s*\n", "\n", rich_html.strip()) + "\n</div>"]
    plain = _text(data.get("text/plain", "")).strip("\n")
    if plain and not _OBJECT_REPR.match(plain.strip()):
        return [_fence(_clean_terminal_text(plain), "text")]
    return []


def _outputs_to_markdown(outputs: list[dict[str, Any]], widgets: dict[str, Any], language: str) -> list[str]:
    parts: list[str] = []
    stream: list[str] = []

    def flush_stream() -> None:
        text = _clean_terminal_text("".join(stream)).strip("\n")
        if text:
            parts.append(_fence(text, "text"))
        stream.clear()

    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            stream.append(_text(output.get("text")))
            continue
        flush_stream()
        if kind in ("execute_result", "display_data"):
            parts.extend(_rich_output(output, widgets, language))
        elif kind == "error":
            traceback = _clean_terminal_text("\n".join(_text(line) for line in output.get("traceback", [])))
            header = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
            parts.append(_fence(traceback.strip("\n") or header, "text"))
    flush_stream()
    return parts


def _embed_attachments(source: str, attachments: dict[str, dict[str, str]]) -> str:
    """Replace ``attachment:<name>`` links (images pasted into markdown cells) by data URIs."""
    for name, bundle in attachments.items():
        for mime, payload in bundle.items():
            if mime.startswith("image/"):
                uri = f"data:{mime};base64,{''.join(_text(payload).split())}"
                source = source.replace(f"attachment:{name}", uri)
                break
    return source


def _check_notebook(nb: Any) -> None:
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(
            "not a Jupyter notebook: expected a JSON object with a 'cells' list "
            "(nbformat 4; read the .ipynb file with json.load or nbformat.read)"
        )
    major = nb.get("nbformat", 4)
    if not isinstance(major, int) or major < 4:
        raise ValueError(
            f"notebook is nbformat {major}; only nbformat 4 is supported "
            "(upgrade it with `jupyter nbconvert --to notebook --inplace <file>.ipynb`)"
        )


def notebook_to_markdown(
    nb: dict[str, Any], title: str | None = None, math: bool = True, failures: list[str] | None = None
) -> str:
    """Markdown for mdBook from a notebook (nbformat 4, as a dict or ``nbformat.NotebookNode``).

    Markdown cells are kept verbatim except that their math is rendered to MathML
    (:func:`markdown_math_to_mathml`; ``math=False`` keeps it as is, formulas that could not be
    converted are appended to ``failures``) and pasted images are inlined. Code cells become fenced
    blocks in the kernel's language; their outputs follow: streams, ``text/plain`` and errors in
    ``text`` blocks (ANSI colours removed), images as ``<img>`` with a base64 data URI, Markdown
    and script-free HTML as is, widgets as their saved Output areas / progress bars and a note.
    Cell tags ``remove-cell``, ``remove-input`` and ``remove-output`` drop those parts; a code cell
    collapsed in Jupyter (``jupyter.source_hidden``) or tagged ``hide-input`` is folded, with its
    outputs, into a ``<details>`` element (the notebooks' exercise solutions: their printed answers
    stay hidden too). ``title`` becomes a level-1 heading unless the first cell already starts with one.
    """
    _check_notebook(nb)
    metadata = nb.get("metadata", {}) or {}
    language = (
        (metadata.get("kernelspec") or {}).get("language")
        or (metadata.get("language_info") or {}).get("name")
        or "python"
    )
    widgets = ((metadata.get("widgets") or {}).get(_WIDGET_STATE) or {}).get("state", {}) or {}
    cells: list[dict[str, Any]] = nb["cells"]
    blocks: list[str] = []
    first_source = _text(cells[0].get("source")).lstrip() if cells else ""
    if title and not (cells and cells[0].get("cell_type") == "markdown" and first_source.startswith("# ")):
        blocks.append(f"# {title}")

    for cell in cells:
        cell_meta = cell.get("metadata", {}) or {}
        tags = set(cell_meta.get("tags", []) or [])
        if "remove-cell" in tags:
            continue
        source = _text(cell.get("source"))
        kind = cell.get("cell_type")
        if kind == "markdown":
            source = _embed_attachments(source, cell.get("attachments", {}) or {})
            if source.strip():
                blocks.append((markdown_math_to_mathml(source, failures) if math else source).strip("\n"))
        elif kind == "raw":
            mime = cell_meta.get("format") or cell_meta.get("raw_mimetype") or ""
            if mime in ("text/markdown", "text/html") and source.strip():
                blocks.append(source.strip("\n"))
        elif kind == "code":
            parts = [_fence(source, language)] if source.strip() and "remove-input" not in tags else []
            outputs = []
            if "remove-output" not in tags:
                outputs = _outputs_to_markdown(cell.get("outputs", []) or [], widgets, language)
            hidden = (cell_meta.get("jupyter") or {}).get("source_hidden") or "hide-input" in tags
            if hidden and parts:
                # A solution's output gives the answer away as much as its code: both go in the fold.
                summary = "Show code and output" if outputs else "Show code"
                body = "\n\n".join(parts + outputs)
                blocks.append(f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>")
            else:
                blocks.extend(parts + outputs)
    return "\n\n".join(blocks) + "\n"


def _title_from_stem(stem: str) -> str:
    """``00_foundations`` -> ``00 Foundations``."""
    return " ".join(word[:1].upper() + word[1:] for word in stem.replace("-", "_").split("_") if word)


def read_notebook(path: str | Path) -> dict[str, Any]:
    """Load a ``.ipynb`` file as a dict, with an error naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            nb = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid notebook JSON ({err}); restore it from git or re-save it in Jupyter"
        ) from err
    try:
        _check_notebook(nb)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return nb


def find_notebook(stem: str, notebooks: Path, executed: Path | None = None) -> Path | None:
    """The executed copy ``executed/<stem>.ipynb`` if present, else ``notebooks/<stem>.ipynb``, else None."""
    for folder in (executed, notebooks):
        if folder is not None and (folder / f"{stem}.ipynb").is_file():
            return folder / f"{stem}.ipynb"
    return None


def chapters_from_notebooks(folder: str | Path, executed: str | Path | None = None) -> dict[str, str]:
    """Markdown chapter per ``<stem>.ipynb`` in ``folder``, keyed by stem, in name order.

    Where ``executed/<stem>.ipynb`` exists, that executed copy (with outputs) is converted instead.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist (expected the repo's notebooks/)")
    executed_dir = Path(executed) if executed is not None else None
    chapters: dict[str, str] = {}
    for source in sorted(folder.glob("*.ipynb")):
        path = find_notebook(source.stem, folder, executed_dir) or source
        chapters[source.stem] = notebook_to_markdown(read_notebook(path), title=_title_from_stem(source.stem))
    return chapters


def _chapter_markdown(name: str, stem: str, notebooks: Path, executed: Path, root: Path) -> str:
    def shown(path: Path) -> str:
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

    source = notebooks / f"{stem}.ipynb"
    path = find_notebook(stem, notebooks, executed)
    if path is None:
        print(
            f"[notebooks] warning: {shown(source)} not found; chapter '{name}' left as a note",
            file=sys.stderr,
        )
        return (
            f"# {name}\n\n> **The notebook `{shown(source)}` was not found** when this book was built. "
            f"Check the chapter path in `SUMMARY.md` (`notebooks/{stem}.md` is filled from "
            f"`{stem}.ipynb`) and the `notebooks` key of `[preprocessor.notebooks]` in `book.toml`.\n"
        )
    if path.parent == executed:
        if source.is_file() and source.stat().st_mtime > path.stat().st_mtime:
            print(
                f"[notebooks] warning: {shown(path)} is older than {shown(source)}; "
                "re-execute the notebooks (make book) to refresh it",
                file=sys.stderr,
            )
        origin = f"Generated from `{shown(source)}`; outputs from the executed copy `{shown(path)}`."
    else:
        origin = (
            f"Generated from `{shown(path)}`, shown without outputs: execute it into "
            f"`{shown(executed)}/` (`make book`) to include them."
        )
    failures: list[str] = []
    markdown = notebook_to_markdown(read_notebook(path), title=name, failures=failures)
    _warn_math_failures(shown(path), failures)
    return markdown + f"\n---\n\n*{origin}*\n"


def _warn_math_failures(where: str, failures: list[str]) -> None:
    for failure in failures:
        print(
            f"[notebooks] warning: {where}: formula shown as TeX source, not converted to MathML: {failure}",
            file=sys.stderr,
        )


def _iter_chapters(items: list[Any]) -> Iterator[dict[str, Any]]:
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Chapter"), dict):
            chapter = item["Chapter"]
            yield chapter
            yield from _iter_chapters(chapter.get("sub_items", []) or [])


def preprocess(context: dict[str, Any], book: dict[str, Any]) -> dict[str, Any]:
    """Fill every ``notebooks/<stem>.md`` chapter of ``book`` (mdBook's JSON) from its notebook, and
    render the math of every other chapter (the recipe cards) to MathML."""
    root = Path(context.get("root", "."))
    config = context.get("config") or {}
    settings = (config.get("preprocessor") or {}).get("notebooks") or {}
    source_dir = (config.get("book") or {}).get("src", "src")
    notebooks = root / str(settings.get("notebooks", DEFAULT_NOTEBOOKS))
    executed = root / str(settings.get("executed", DEFAULT_EXECUTED))
    items = book.get("items", book.get("sections"))
    if not isinstance(items, list):
        raise ValueError("book JSON from mdBook has neither 'items' (mdBook >= 0.5) nor 'sections' (0.4)")
    listed: set[str] = set()
    for chapter in _iter_chapters(items):
        path = chapter.get("path") or ""
        if (
            path.startswith(CHAPTER_PREFIX)
            and path.endswith(".md")
            and "/" not in path[len(CHAPTER_PREFIX) :]
        ):
            stem = path[len(CHAPTER_PREFIX) : -len(".md")]
            listed.add(stem)
            chapter["content"] = _chapter_markdown(chapter.get("name", stem), stem, notebooks, executed, root)
        elif chapter.get("content"):
            failures: list[str] = []
            chapter["content"] = markdown_math_to_mathml(chapter["content"], failures)
            _warn_math_failures(f"{source_dir}/{path}" if path else chapter.get("name", "a page"), failures)
    if notebooks.is_dir():
        for unlisted in sorted({p.stem for p in notebooks.glob("*.ipynb")} - listed):
            print(
                f"[notebooks] warning: notebooks/{unlisted}.ipynb has no chapter; add "
                f"`- [{_title_from_stem(unlisted)}](notebooks/{unlisted}.md)` to SUMMARY.md "
                "and an empty page at that path",
                file=sys.stderr,
            )
    return book


_USAGE = (
    "usage: python -m sslcookbook.book [supports <renderer>]\n"
    "An mdBook preprocessor: `mdbook build` runs it (see [preprocessor.notebooks] in book.toml) and\n"
    "passes [context, book] JSON on stdin."
)


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """mdBook entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    if argv:
        if len(argv) == 2 and argv[0] == "supports":
            return 0 if argv[1] in SUPPORTED_RENDERERS else 1
        print(_USAGE, file=sys.stderr)
        return 2
    if stdin.isatty():
        print(_USAGE, file=sys.stderr)
        return 2
    try:
        payload = json.load(stdin)
    except json.JSONDecodeError as err:
        print(f"[notebooks] error: stdin is not JSON ({err}).\n{_USAGE}", file=sys.stderr)
        return 1
    if not (isinstance(payload, list) and len(payload) == 2 and all(isinstance(p, dict) for p in payload)):
        print(
            f"[notebooks] error: expected a JSON array [context, book] on stdin.\n{_USAGE}", file=sys.stderr
        )
        return 1
    context, book = payload
    try:
        book = preprocess(context, book)
    except (OSError, ValueError, ImportError) as err:
        print(f"[notebooks] error: {err}", file=sys.stderr)
        return 1
    json.dump(book, stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
