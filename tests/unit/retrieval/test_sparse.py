"""BM25 sparse vectors: stable term indices, stemming, saturation and length normalisation."""

from __future__ import annotations

import hashlib

import pytest

from retrieval.sparse import Bm25Encoder, term_index


def test_term_indices_are_stable_across_processes() -> None:
    """Guards against salted hashing: every node and restart must agree on indices."""
    # BLAKE2b of the UTF-8 bytes, first four bytes big-endian: a fixed number.
    expected = int.from_bytes(hashlib.blake2b(b"refund", digest_size=4).digest(), "big")
    assert term_index("refund") == expected


def test_words_are_case_folded_and_stemmed() -> None:
    encoder = Bm25Encoder()
    assert encoder.words("Refunds REFUND refunded") == ["refund", "refund", "refund"]
    assert encoder.encode_query("Refunds refund").indices == [term_index("refund")]


def test_query_vector_has_one_per_distinct_word() -> None:
    vector = Bm25Encoder().encode_query("express delivery, express!")
    assert len(vector.indices) == 2
    assert vector.values == [1.0, 1.0]
    assert vector.indices == sorted(vector.indices)


def test_term_frequency_saturates() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.0)
    once = encoder.encode_document("parcel").as_dict()[term_index("parcel")]
    many = encoder.encode_document("parcel " * 50).as_dict()[term_index("parcel")]
    assert once == pytest.approx(1.0)
    assert once < many < 1.2 + 1


def test_longer_chunks_weigh_a_word_less() -> None:
    encoder = Bm25Encoder(avg_len=10)
    short = encoder.encode_document("refund policy").as_dict()[term_index("refund")]
    long = encoder.encode_document("refund " + "other words here " * 20).as_dict()
    assert long[term_index("refund")] < short


def test_text_without_words_gives_an_empty_vector() -> None:
    assert Bm25Encoder().encode_query("?! ...").indices == []


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k1"):
        Bm25Encoder(b=2.0)
