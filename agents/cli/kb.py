"""`triage kb index` and `triage kb search`: build and query the SOP index (FAISS + BM25) of a Markdown folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command, embedder, group


def cmd_kb_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from retrieval.corpus import content_hash, load_chunks
    from retrieval.index import SopIndex

    kb = Path(args.kb)
    chunks = load_chunks(kb)
    chosen = embedder(args)
    with tqdm(total=len(chunks), unit="chunk", desc="embedding", disable=args.quiet) as bar:
        index = SopIndex.build(
            chunks,
            chosen,
            content_hash=content_hash(kb),
            source=str(kb),
            approximate=args.approximate,
            progress=bar.update,
        )
    index.save(Path(args.out))
    print(f"indexed {len(chunks)} chunks from {kb} into {args.out} ({chosen.name})")
    return 0


def cmd_kb_search(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from retrieval.factory import embedder_named
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    index_dir = Path(args.index) if args.index else settings_fn(args).index_dir
    named = embedder_named(SopIndex.read_manifest(index_dir)["embedder"])
    hits = HybridSearcher(SopIndex.load(index_dir, named)).search(args.query, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps([h.model_dump(exclude={"text", "meta"}) for h in hits], indent=2))
    else:
        for rank, h in enumerate(hits, 1):
            print(f"{rank}. {h.title} [{h.ref}] score={h.score:.4f}\n   {h.path}\n   {h.snippet[:160]}")
        if not hits:
            print("no hits")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    kb = group(
        sub,
        "kb",
        "build and search the knowledge-base index (FAISS + BM25 over Markdown)",
        "triage kb index --kb kb/sops --out data/index",
        'triage kb search "VPN keeps disconnecting"',
    )
    p = command(
        kb,
        "index",
        "build a FAISS + BM25 index of a folder of Markdown",
        "triage kb index --kb kb/sops --out data/index",
        "triage kb index --kb ~/runbooks --out /tmp/runbooks-index --embedder hashing --approximate",
    )
    p.add_argument("--kb", required=True, help="folder of Markdown files (searched recursively)")
    p.add_argument("--out", required=True, help="folder to write the index to (replaced if it exists)")
    add_embedder(p)
    p.add_argument("--approximate", action="store_true", help="HNSW instead of exact search (large corpora)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_kb_index)

    p = command(
        kb,
        "search",
        "search an index and print the best sections",
        'triage kb search "VPN keeps disconnecting"',
        'triage kb search "printer jam" -k 3 --mode lexical --index /tmp/runbooks-index --json',
    )
    p.add_argument("query", help="what to look for, in plain words")
    p.add_argument("-k", type=int, default=5, help="how many hits to print (default: %(default)s)")
    p.add_argument("--index", help="index folder (default: the data folder's index, TRIAGE_DATA_DIR/index)")
    p.add_argument(
        "--mode",
        choices=["lexical", "dense", "hybrid"],
        default="hybrid",
        help="BM25 only, vectors only, or both fused (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_kb_search(a, settings_fn))
