"""The cache of prepared GraphQL documents (api/graphql_route.py)."""

from __future__ import annotations

import threading

from graphql import GraphQLError

from uvm_reporting.api.graphql_route import PreparedDocument, PreparedDocuments


def test_one_document_is_prepared_at_a_time_and_the_same_text_once() -> None:
    release = threading.Event()
    running: list[int] = []
    most = [0]
    prepared_texts: list[str] = []

    def prepare(query: str) -> PreparedDocument:
        running.append(1)
        most[0] = max(most[0], len(running))
        release.wait(timeout=10)
        prepared_texts.append(query)
        running.pop()
        return PreparedDocument(None, (), ())

    documents = PreparedDocuments(prepare, size=8)
    threads = [threading.Thread(target=documents, args=(text,)) for text in ("{ a }", "{ a }", "{ b }", "{ c }")]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert most[0] == 1
    assert sorted(prepared_texts) == ["{ a }", "{ b }", "{ c }"]
    assert documents.cached("{ a }") is not None


def test_refused_documents_are_not_kept_and_the_oldest_valid_one_goes_first() -> None:
    def prepare(query: str) -> PreparedDocument:
        errors = (GraphQLError("refused"),) if "junk" in query else ()
        return PreparedDocument(None, errors, ())

    documents = PreparedDocuments(prepare, size=2)
    for text in ("{ a }", "{ b }", "junk 1", "junk 2"):
        documents(text)
    assert documents.cached("junk 1") is None
    assert documents.cached("{ a }") is not None  # kept: junk evicts nothing
    documents("{ c }")  # evicts { a }, the oldest
    assert documents.cached("{ a }") is None
    assert documents.cached("{ b }") is not None
    assert documents.cached("{ c }") is not None
