"""The retrieval benchmark's corpus and labels: sections cut right, questions made by rule."""

from __future__ import annotations

from bench.retrieval_corpus import (
    MIN_BODY_WORDS,
    Section,
    body_words,
    build_sections,
    label_queries,
    load_topics,
    question_for,
    split_sections,
)

TOPIC = """Compound statements
*******************

Compound statements contain groups of other statements.

The "match" statement
=====================

Intro to match.

Guards
------

A guard is an if clause.
"""


def test_split_sections_follows_the_underline_levels() -> None:
    sections = split_sections("compound", TOPIC)
    assert [(s.depth, s.title, s.parent) for s in sections] == [
        (0, "Compound statements", ""),
        (1, 'The "match" statement', "Compound statements"),
        (2, "Guards", 'The "match" statement'),
    ]
    assert sections[2].text == "Guards\n------\n\nA guard is an if clause."
    assert body_words(sections[0]) == 7


def test_a_topic_without_headings_is_one_section() -> None:
    (only,) = split_sections("plain", "Just text here.")
    assert (only.title, only.depth, only.text) == ("plain", 0, "Just text here.")


def section(title: str, depth: int = 0, parent: str = "") -> Section:
    return Section("t", 0, depth, title, parent, f"{title}\n===\n\nbody")


def test_questions_follow_the_documented_rules() -> None:
    assert question_for(section('The "with" statement')) == 'How does the "with" statement work?'
    assert question_for(section("Comparisons")) == "What are comparisons?"
    assert question_for(section("The Null Object")) == "What is the null object?"
    assert question_for(section("Invoking Descriptors")) == "How does invoking descriptors work?"
    deep = section("OR Patterns", 3, "Patterns")
    assert question_for(deep) == "What are OR patterns in patterns?"
    assert question_for(section("__slots__")) == "What is __slots__?"


def test_the_real_corpus_gives_unique_labelled_sections() -> None:
    sections = build_sections(load_topics())
    names = [s.name for s in sections]
    assert len(sections) > 150
    assert len(set(names)) == len(names)
    assert len({s.text for s in sections}) == len(sections)  # repeated bodies kept once
    assert all(body_words(s) >= MIN_BODY_WORDS for s in sections)
    labels = label_queries(sections)
    assert len(labels) > 150
    assert {n for q in labels for n in q.relevant} == set(names)  # every section labelled once
    assert sum(len(q.relevant) for q in labels) == len(sections)
    by_query = {q.query: q for q in labels}
    # The same title in two topics with different text: both answer the question.
    if_statement = by_query['How does the "if" statement work?']
    assert len(if_statement.relevant) == 2
    assert [q.order for q in labels] == sorted(q.order for q in labels)
