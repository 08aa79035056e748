"""Read augmentation shards back as a stream, for the classifiers.

    shards = json.load(open("outputs/augment/synthcxr_tiny/manifest.json"))["shards"]
    dataset = read_augmented([f"outputs/augment/synthcxr_tiny/shards/{name}" for name in shards])
    for item in DataLoader(dataset, batch_size=None, num_workers=2): ...

Each accepted (or unverified) sample yields its counterfactual and, with ``originals``, the
source it was made from (stored at the model's resolution beside it), each with its labels
and its (y, a) group, so a classifier can train on both and measure how much its prediction
moves between the two. Shards are split across nodes (DDP ranks) and DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import fsspec
import webdataset as wds
from webdataset.gopen import gopen_schemes

from prism_aug.editing.verifier import ACCEPTED, UNVERIFIED

USABLE: tuple[str, ...] = (ACCEPTED, UNVERIFIED)


def _open_with_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kwargs: Any) -> Any:
    return fsspec.open(url, mode).open()


def serve_fsspec_urls() -> None:
    """Let webdataset open every URL scheme fsspec knows and it does not (s3://, az://, ...),
    where augment writes shards; its own handlers (http, gs, pipe) are kept."""
    for scheme in fsspec.available_protocols():
        gopen_schemes.setdefault(scheme, _open_with_fsspec)


def read_augmented(
    urls: str | list[str],
    *,
    originals: bool = True,
    statuses: tuple[str, ...] = USABLE,
    every_rank: bool = False,
    decode: bool = True,
) -> wds.WebDataset:
    """A webdataset stream of ``{"image", "kind", "key", "source_key", "source_path", "edit",
    "labels", "group"}`` dicts; ``image`` is uint8 ``(H, W)``, ``kind`` "counterfactual" or
    "original".

    Args:
        urls: shard paths or URLs (a list, or one string with webdataset's brace notation).
        originals: also yield each counterfactual's source, right before it.
        statuses: the sample statuses kept (rejected and failed samples are skipped).
        every_rank: every DDP rank reads every shard, for a training set held whole that a
            distributed sampler divides; by default each rank streams its own shards.
        decode: images as arrays; False keeps them PNG bytes (``decode_grayscale`` of an
            ``io.BytesIO`` decodes one), smaller to hold in memory (SynthCXR's 64 px
            renders: 2.0 kB against 4.1 kB).
    """
    serve_fsspec_urls()
    dataset = wds.WebDataset(
        urls,
        shardshuffle=False,
        nodesplitter=None if every_rank else wds.split_by_node,
        workersplitter=wds.split_by_worker,
        empty_check=False,
    )
    dataset = dataset.select(lambda sample: "png" in sample)  # failed samples have no image
    return (
        (dataset.decode("l8") if decode else dataset.decode())  # json is decoded either way
        .select(lambda sample: sample["json"]["status"] in statuses)
        .compose(lambda stream: _items(stream, originals))
    )


def _items(samples: Iterable[dict[str, Any]], originals: bool) -> Iterator[dict[str, Any]]:
    for sample in samples:
        meta = sample["json"]
        common = {
            "key": meta["key"],
            "source_key": meta["source_key"],
            "source_path": meta["source_path"],
            "edit": meta["edit"],
        }
        if originals:
            yield {
                **common,
                "image": sample["source.png"],
                "kind": "original",
                "labels": meta["labels_before"],
                "group": meta["group_before"],
            }
        yield {
            **common,
            "image": sample["png"],
            "kind": "counterfactual",
            "labels": meta["labels_after"],
            "group": meta["group_after"],
        }
