"""Every ```sql example in README.md and docs/*.md runs, as written, against a real kit.

Each document gets a fresh database with the kit deployed and the demo application
(schema ``app``, ``orchestrator/demo_data/app.sql``: what ``pgmaint demo`` creates), whose
tables the examples use. Its ```sql blocks run in document order in one ``psql`` session
(autocommit, as the docs say procedures are called; psql meta-commands such as ``\\gset``
work as they would for a reader). The script psql reads keeps every block on the line it
has in the document and blanks everything else, so psql's own error prefix names the
document's line. A block that cannot run is marked with ``<!-- no-test: reason -->`` on the
line before it; keep those rare.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
import pytest

from orchestrator.sandbox import find_bindir

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
NO_TEST = re.compile(r"^\s*<!--\s*no-test:\s*(.*?)\s*-->\s*$")
# psql reports each message of a script as "psql:<file>:<line>: <LEVEL>:  <text>"
PSQL_MESSAGE = re.compile(r"^psql:(?P<file>[^:]+):(?P<line>\d+): (?P<level>\w+):\s*(?P<text>.*)$")


@dataclass
class Block:
    doc: Path
    first_line: int  # 1-based line number of the block's first SQL line
    lines: list[str]
    skip_reason: str | None  # from <!-- no-test: reason --> just before the block

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.first_line}"


def sql_blocks(doc: Path) -> list[Block]:
    """The ```sql fenced blocks of a Markdown file, with their line numbers."""
    blocks: list[Block] = []
    lines = doc.read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if lang == "sql":
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = NO_TEST.match(before)
            blocks.append(Block(doc, i + 2, lines[i + 1:end], marker.group(1) if marker else None))
        i = end + 1
    return blocks


def psql_script(doc: Path, blocks: list[Block]) -> str:
    """The document with everything but its runnable SQL blanked (line numbers kept)."""
    out = [""] * len(doc.read_text("utf-8").splitlines())
    for b in blocks:
        if b.skip_reason is None:
            out[b.first_line - 1:b.first_line - 1 + len(b.lines)] = b.lines
    return "\n".join(out) + "\n"


def _code(line: str) -> str:
    return line.split("--", 1)[0].strip()  # the docs put no "--" inside literals


DOCS_WITH_SQL = [d for d in DOCS if sql_blocks(d)]


def test_blocks_are_found_and_exceptions_are_rare_and_justified():
    blocks = [b for d in DOCS for b in sql_blocks(d)]
    assert len(blocks) >= 10 and len(DOCS_WITH_SQL) >= 4
    skipped = [b for b in blocks if b.skip_reason is not None]
    assert all(len(b.skip_reason or "") >= 20 for b in skipped), [b.where for b in skipped]
    assert len(skipped) <= 2, [b.where for b in skipped]
    for d in DOCS:  # a marker must sit right before a ```sql block
        lines = d.read_text("utf-8").splitlines()
        for n, line in enumerate(lines):
            if NO_TEST.match(line):
                after = next((x for x in lines[n + 1:] if x.strip()), "")
                assert after.strip() == "```sql", f"{d.name}:{n + 1}: no-test marker before no sql block"
    for b in blocks:  # the last statement of a block ends it (else it would run into the next)
        code = [_code(x) for x in b.lines if _code(x)]
        assert code and (code[-1].endswith(";") or code[-1].startswith("\\")
                         or "\\g" in code[-1]), f"{b.where}: block does not end with ';'"


def _load_demo_app(db: psycopg.Connection) -> None:
    script = resources.files("orchestrator").joinpath("demo_data/app.sql").read_text("utf-8")
    with db.transaction():
        db.execute(script)


def _errors(stderr: str, doc_lines: list[str]) -> list[str]:
    """psql's error messages (with the lines that belong to them: LINE, DETAIL, HINT,
    CONTEXT), each led by the document's line."""
    found: list[list[str]] = []
    in_error = False
    for line in stderr.splitlines():
        m = PSQL_MESSAGE.match(line)
        if m:
            level = m.group("level").upper()
            in_error = level in ("ERROR", "FATAL", "PANIC")
            if in_error:
                n = int(m.group("line"))
                found.append([f"{m.group('file')}:{n}: {doc_lines[n - 1].strip()}",
                              f"    {level}: {m.group('text')}"])
        elif in_error:
            found[-1].append(f"    {line}")
    return ["\n".join(entry) for entry in found]


def run_doc(doc: Path, root: Path, dsn: str, workdir: Path) -> list[str]:
    """Run the document's SQL blocks in one psql session; psql's errors, each led by
    ``<document>:<line>: <that line>``."""
    rel = doc.relative_to(root)
    script = workdir / rel
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(psql_script(doc, sql_blocks(doc)), "utf-8")
    proc = subprocess.run(
        [str(find_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=default",
         "-d", dsn, "-f", str(rel)],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return _errors(proc.stderr, doc.read_text("utf-8").splitlines())


@pytest.mark.parametrize("doc", DOCS_WITH_SQL, ids=lambda d: str(d.relative_to(ROOT)))
def test_sql_examples_run(doc: Path, db: psycopg.Connection, db_dsn: str, tmp_path: Path):
    _load_demo_app(db)
    errors = run_doc(doc, ROOT, db_dsn, tmp_path / "run")
    assert not errors, "SQL examples that fail:\n" + "\n".join(errors)


def test_a_failing_example_is_reported_with_its_file_and_line(db, db_dsn, tmp_path):
    doc = tmp_path / "docs" / "bad.md"
    doc.parent.mkdir()
    doc.write_text(
        "# bad\n"                                               # 1
        "```sql\n"                                              # 2
        "CREATE TABLE public.t (id int);\n"                     # 3
        "SELECT maint.run_start('x', dry_run => false);\n"      # 4
        "```\n"                                                 # 5
        "\n"                                                    # 6
        "<!-- no-test: this block would fail, and is not run at all -->\n"  # 7
        "```sql\n"                                              # 8
        "DROP TABLE public.t;\n"                                # 9
        "```\n"                                                 # 10
        "```sql\n"                                              # 11
        "SELECT 1 AS n \\gset\n"                              # 12
        "\\frobnicate\n"                                      # 13
        "INSERT INTO public.t VALUES (:n);\n"                   # 14
        "```\n", "utf-8")
    assert [b.skip_reason is not None for b in sql_blocks(doc)] == [False, True, False]
    errors = run_doc(doc, tmp_path, db_dsn, tmp_path / "run")
    assert [e.splitlines()[0] for e in errors] == [
        "docs/bad.md:4: SELECT maint.run_start('x', dry_run => false);",
        "docs/bad.md:13: \\frobnicate",
    ]
    assert "maint.run_start(unknown, dry_run => boolean) does not exist" in errors[0]
    assert "invalid command" in errors[1]
    # the marked block did not run; the others did, in one session
    assert db.execute("SELECT id FROM public.t").fetchall() == [(1,)]
