"""Retrieval over Markdown knowledge: chunking, embedders, FAISS and lexical indexes, hybrid fusion."""
