"""The retrieval benchmark's corpus and its labelled queries, built by rule from public text.

Corpus: the Python Language Reference as shipped in CPython's standard library
(``pydoc_data.topics.topics``: 79 help topics, about 0.5 MB of reStructuredText
rendered to plain text). Each topic is cut at its headings (``*``, ``=``, ``-``,
``~`` underlines) into sections; every section with a body of at least
``MIN_BODY_WORDS`` words becomes one document (its heading line kept, as a reader
would see it). Sections whose body appears in more than one topic (``async`` repeats
part of ``compound``) are kept once.

Labels: one query per distinct section title, made by rule from the title (see
``question_for``); its relevant documents are the sections carrying that title,
and the relevant chunks are all of their chunks. Everything here is deterministic.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MIN_BODY_WORDS = 15
_UNDERLINES = "*=-~^"
_STATEMENT = re.compile(r'^The "([^"]+)" statement$')
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Section:
    """One section of a help topic, ingested as one document.

    Attributes:
        topic: The ``pydoc_data`` topic key, e.g. ``"assignment"``.
        index: Order of the section within its topic.
        depth: Heading depth: 0 for the topic's title, 1 for ``=``, and so on.
        title: The heading text.
        parent: The heading one level up (empty at depth 0).
        text: Heading line, underline and body, as in the topic.
    """

    topic: str
    index: int
    depth: int
    title: str
    parent: str
    text: str

    @property
    def name(self) -> str:
        """Document name: unique, readable, safe in a URL."""
        slug = _NAME_CHARS.sub("-", self.title).strip("-").lower()[:60] or "section"
        return f"{self.topic}--{self.index:02d}-{slug}.txt"


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    """A question and the documents that answer it.

    Attributes:
        query: The question, made by rule from a section title.
        title: The title it was made from (with its parent for deep sections).
        relevant: Names of the documents (sections) that answer it.
        order: Position of its first section in corpus order (neighbours are close).
    """

    query: str
    title: str
    relevant: frozenset[str]
    order: int


def load_topics() -> dict[str, str]:
    """The Python Language Reference help topics shipped with this interpreter."""
    from pydoc_data.topics import topics

    return dict(topics)


def split_sections(topic: str, text: str) -> list[Section]:
    """Cut one topic at its underlined headings.

    Text before the first heading (rare) belongs to the first section. A heading is a
    non-blank line followed by a line of one repeated underline character of the same
    length.
    """
    lines = text.split("\n")
    heads: list[tuple[int, str, str]] = []  # (line of the title, title, underline char)
    for i in range(1, len(lines)):
        under, title = lines[i], lines[i - 1]
        if (
            under
            and under[0] in _UNDERLINES
            and len(set(under)) == 1
            and len(under) == len(title)
            and title.strip()
        ):
            heads.append((i - 1, title.strip(), under[0]))
    if not heads:
        return [Section(topic, 0, 0, topic, "", text.strip())]
    levels: list[str] = []  # underline characters in order of first use = depth
    sections: list[Section] = []
    stack: list[str] = []
    for n, (line, title, char) in enumerate(heads):
        if char not in levels:
            levels.append(char)
        depth = levels.index(char)
        del stack[depth:]
        parent = stack[-1] if stack else ""
        stack.append(title)
        start = 0 if n == 0 else line
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[start:end]).strip()
        sections.append(Section(topic, n, depth, title, parent, body))
    return sections


def body_words(section: Section) -> int:
    """Words of a section below its heading and underline."""
    return len(section.text.split("\n", 2)[-1].split()) if "\n" in section.text else 0


def build_sections(topics: Mapping[str, str]) -> list[Section]:
    """Every section worth a document, in topic order, duplicates of a body dropped."""
    seen: set[str] = set()
    out: list[Section] = []
    for topic in sorted(topics):
        for section in split_sections(topic, topics[topic]):
            if body_words(section) < MIN_BODY_WORDS:
                continue
            digest = hashlib.sha256(section.text.encode("utf-8")).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            out.append(section)
    return out


def _lower_words(title: str) -> str:
    """Lower-case Capitalised words; keep acronyms ("OR"), identifiers and quotes."""
    return " ".join(
        word.lower() if word[:1].isupper() and word[1:].islower() and word.isalpha() else word
        for word in title.split(" ")
    )


def question_for(section: Section) -> str:
    """A user's question about a section, made from its title by fixed rules.

    - ``The "x" statement`` becomes ``How does the "x" statement work?``;
    - a title opening with a gerund ("Invoking descriptors") becomes
      ``How does ... work?``;
    - a title ending in ``s`` (a plural: "Comparisons") becomes ``What are ...?``;
    - anything else becomes ``What is ...?``;
    - below depth 1, titles are generic ("Overview", "Guards"), so the parent heading
      is added: ``What are guards in the "match" statement?``.
    """
    match = _STATEMENT.match(section.title)
    if match:
        core = f'How does the "{match.group(1)}" statement work'
    elif section.title.split(" ", 1)[0].endswith("ing"):
        core = f"How does {_lower_words(section.title)} work"
    elif section.title.endswith("s"):
        core = f"What are {_lower_words(section.title)}"
    else:
        core = f"What is {_lower_words(section.title)}"
    if section.depth >= 2 and section.parent:
        core += f" in {_lower_words(section.parent)}"
    return core + "?"


def label_queries(sections: Sequence[Section]) -> list[LabelledQuery]:
    """One labelled query per distinct question; relevant = every section asking it."""
    groups: dict[str, list[tuple[int, Section]]] = {}
    for order, section in enumerate(sections):
        groups.setdefault(question_for(section), []).append((order, section))
    out = []
    for query, members in groups.items():
        first_order, first = members[0]
        title = first.title if first.depth < 2 else f"{first.title} ({first.parent})"
        out.append(
            LabelledQuery(
                query=query,
                title=title,
                relevant=frozenset(s.name for _, s in members),
                order=first_order,
            )
        )
    return sorted(out, key=lambda q: q.order)
