"""Markdown chunking: ids, titles, section paths, fences, windows, front matter, identifiers."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.corpus import content_hash, load_chunks
from retrieval.errors import CorpusError
from retrieval.markdown import (
    MAX_CHUNK_CHARS,
    FrontMatterError,
    chunk_markdown,
    split_front_matter,
    split_identifiers,
)

SLACK = 50  # "under MAX_CHUNK_CHARS plus a little"


def by_section(chunks: list) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in chunks:
        out[c.section] = f"{out[c.section]}\n{c.text}" if c.section in out else c.text
    return out


# ---- doc id, title, section path -------------------------------------------------------------


def test_front_matter_gives_doc_id_and_title(tiny_corpus: Path) -> None:
    chunks = [c for c in load_chunks(tiny_corpus) if c.path == "vpn.md"]
    assert {c.doc_id for c in chunks} == {"sop-vpn"}
    assert {c.title for c in chunks} == {"Connect to the GlobalConnect VPN"}
    assert chunks[0].meta["service"] == "vpn"
    assert chunks[0].meta["tags"] == ["vpn", "remote access"]


def test_doc_id_without_front_matter_is_relative_path_without_md(tiny_corpus: Path) -> None:
    ids = {c.path: c.doc_id for c in load_chunks(tiny_corpus)}
    assert ids == {
        "vpn.md": "sop-vpn",
        "printer.md": "printer",
        "guides/password-reset.md": "guides/password-reset",
        "payroll.md": "payroll",
        "alerts/kube.md": "alerts/kube",
    }


def test_title_falls_back_to_first_h1_then_file_stem(tiny_corpus: Path) -> None:
    titles = {c.doc_id: c.title for c in load_chunks(tiny_corpus)}
    assert titles["payroll"] == "Payslips in PayFlow"  # front matter, no H1
    assert titles["printer"] == "Printer jams on floor 2"  # first H1
    assert titles["guides/password-reset"] == "password reset"  # stem, dashes to spaces
    assert titles["alerts/kube"] == "Kubernetes alerts"


def test_title_h1_is_not_a_section_and_nested_headings_make_a_path(tiny_corpus: Path) -> None:
    chunks = [c for c in load_chunks(tiny_corpus) if c.doc_id == "sop-vpn"]
    assert [c.section for c in chunks] == [
        "",
        "Symptoms",
        "Steps",
        "Steps > Windows",
        "Steps > macOS",
        "If that does not work",  # an H2 pops the H3s
    ]
    sections = by_section(chunks)
    assert "Windows tray" in sections["Steps > Windows"]
    assert "macOS menu bar" in sections["Steps > macOS"]
    assert "Windows" not in sections["Steps > macOS"]
    assert chunks[3].ref == "sop-vpn#Steps > Windows"
    assert chunks[0].ref == "sop-vpn"


def test_deeper_heading_after_sibling_resets_the_path() -> None:
    text = "# T\n## A\na\n### A1\na1\n#### A1x\na1x\n## B\nb\n### B1\nb1\n"
    assert [c.section for c in chunk_markdown(text, "t.md")] == [
        "A",
        "A > A1",
        "A > A1 > A1x",
        "B",
        "B > B1",
    ]


def test_text_before_first_heading_is_kept_with_empty_section(tiny_corpus: Path) -> None:
    chunks = {c.doc_id: c for c in load_chunks(tiny_corpus) if c.section == ""}
    assert "read before printing" in chunks["printer"].text
    assert "floor 2 jams" in chunks["printer"].text  # text under the title H1 too
    assert chunks["guides/password-reset"].text.startswith("Reset a forgotten KeyGate password")
    assert "payroll" not in chunks  # nothing before its first heading: no empty chunk


def test_explicit_doc_id_is_used_when_front_matter_has_none() -> None:
    chunks = chunk_markdown("# Title\nbody", "a/b.md", doc_id="given")
    assert chunks[0].doc_id == "given"
    chunks = chunk_markdown("---\nid: fm\n---\n# Title\nbody", "a/b.md", doc_id="given")
    assert chunks[0].doc_id == "fm"


def test_title_only_document_still_gives_one_chunk() -> None:
    chunks = chunk_markdown("# Only a title\n", "x.md")
    assert len(chunks) == 1
    assert (chunks[0].doc_id, chunks[0].title, chunks[0].section) == ("x", "Only a title", "")


# ---- code fences ------------------------------------------------------------------------------


def test_heading_inside_code_fence_does_not_split(tiny_corpus: Path) -> None:
    chunks = [c for c in load_chunks(tiny_corpus) if c.doc_id == "printer"]
    sections = [c.section for c in chunks]
    assert sections == ["", "Clear the jam", "Toner"]
    assert not any("not a heading" in s for s in sections)
    jam = by_section(chunks)["Clear the jam"]
    assert "```bash\n# not a heading\nlpstat -p floor2-printer\n```" in jam
    assert "Print a test page afterwards." in jam  # text after the fence stays in the section


def test_tilde_fence_also_protects_headings() -> None:
    text = "# T\n## Run\n~~~\n## still code\n~~~\n## Next\nx\n"
    chunks = chunk_markdown(text, "t.md")
    assert [c.section for c in chunks] == ["Run", "Next"]
    assert "## still code" in chunks[0].text


# ---- windows ----------------------------------------------------------------------------------


def test_long_section_is_windowed_at_paragraphs() -> None:
    paras = [f"paragraph {i} " + ("word " * 80).strip() for i in range(12)]  # ~410 chars each
    text = "# T\n## Long\n" + "\n\n".join(paras) + "\n## After\nshort\n"
    chunks = chunk_markdown(text, "t.md")
    long = [c for c in chunks if c.section == "Long"]
    assert len(long) >= 3
    assert all(len(c.text) <= MAX_CHUNK_CHARS + SLACK for c in long)
    joined = "\n\n".join(c.text for c in long)
    assert joined.split("\n\n") == paras  # nothing lost, order kept, no paragraph cut
    assert [c.section for c in chunks if c.section != "Long"] == ["After"]


def test_one_huge_paragraph_is_hard_cut_without_losing_text() -> None:
    para = "".join(chr(ord("a") + i % 26) for i in range(4 * MAX_CHUNK_CHARS + 7))
    chunks = chunk_markdown(f"# T\n## Big\n{para}\n", "t.md")
    assert len(chunks) == 5
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert "".join(c.text for c in chunks) == para


def test_huge_paragraph_after_short_one_stays_under_limit() -> None:
    text = "# T\n## Mixed\n" + "a" * 1000 + "\n\n" + "b" * 3000 + "\n"
    chunks = chunk_markdown(text, "t.md")
    assert max(len(c.text) for c in chunks) <= MAX_CHUNK_CHARS + SLACK


# ---- front matter -----------------------------------------------------------------------------


def test_split_front_matter_returns_mapping_and_body() -> None:
    meta, body = split_front_matter("\ufeff---\r\nid: a\r\ntags: [x, y]\r\n---\r\n# T\r\n")
    assert meta == {"id": "a", "tags": ["x", "y"]}
    assert body == "# T\r\n"
    assert split_front_matter("# No front matter\n") == ({}, "# No front matter\n")
    assert split_front_matter("---\nid: a\n---") == ({"id": "a"}, "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\nid: a\ntitle: never closed\n# T\n", "never closed"),
        ("---\n- a\n- b\n---\nbody\n", "must be a YAML mapping"),
        ("---\njust a string\n---\nbody\n", "must be a YAML mapping"),
        ("---\nid: [unclosed\n---\nbody\n", "not valid YAML"),
        ("---\nid: a\n  bad: indent\n---\nbody\n", "not valid YAML"),
    ],
    ids=["unclosed", "list", "scalar", "bad-flow", "bad-indent"],
)
def test_split_front_matter_errors(text: str, message: str) -> None:
    with pytest.raises(FrontMatterError, match=message):
        split_front_matter(text)
    with pytest.raises(FrontMatterError):
        chunk_markdown(text, "x.md")


def test_broken_front_matter_in_corpus_names_the_file(tiny_corpus: Path) -> None:
    bad = tiny_corpus / "guides" / "broken.md"
    bad.write_text("---\nid: broken\n# never closed\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="never closed") as info:
        load_chunks(tiny_corpus)
    assert info.value.path == str(bad)


def test_empty_front_matter_block_is_accepted() -> None:
    assert split_front_matter("---\n---\n# T\n") == ({}, "# T\n")


def test_heading_ending_in_hash_keeps_it() -> None:
    assert chunk_markdown("# T\n## C#\ntext\n", "t.md")[0].section == "C#"


# ---- identifiers and corpus -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("KubePodCrashLooping", "Kube Pod Crash Looping"),
        ("HTTPServerError 500", "HTTP Server Error"),
        ("open GlobalConnect now", "Global Connect"),
        ("my iPhone", "i Phone"),
    ],
)
def test_split_identifiers_adds_camel_case_parts(text: str, parts: str) -> None:
    out = split_identifiers(text)
    assert out.startswith(text)  # the original stays searchable
    assert out.endswith(parts)


def test_split_identifiers_leaves_plain_text_alone() -> None:
    for text in ("reset my password", "VPN ERROR 809", "Windows", ""):
        assert split_identifiers(text) == text


def test_search_text_contains_identifier_parts(tiny_corpus: Path) -> None:
    chunk = next(c for c in load_chunks(tiny_corpus) if c.section == "KubePodCrashLooping")
    assert "Crash Looping" in chunk.search_text()
    assert chunk.search_text().startswith("Kubernetes alerts. KubePodCrashLooping. ")


def test_content_hash_changes_with_content_and_name(tiny_corpus: Path) -> None:
    before = content_hash(tiny_corpus)
    assert content_hash(tiny_corpus) == before
    doc = tiny_corpus / "payroll.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    edited = content_hash(tiny_corpus)
    assert edited != before
    doc.rename(tiny_corpus / "payroll2.md")
    assert content_hash(tiny_corpus) not in (before, edited)


def test_corpus_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not a folder"):
        load_chunks(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="no .md files"):
        load_chunks(tmp_path)
    (tmp_path / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_chunks(tmp_path)
