"""Clustering speaker embeddings into the speakers of a recording.

After pyannote 3.1's ``AgglomerativeClustering``, with cluster size counted in seconds of
speech rather than in embeddings: a linkage of unit vectors cut at a distance threshold
(average linkage on cosine distance here: pyannote's centroid linkage, tried too, split
and merged the short CAM++ segment embeddings erratically); clusters holding less speech
than ``min_size_s`` are folded into the nearest large one, unless their members are alike
(a speaker heard briefly but clearly); when the number of large clusters falls outside
``[min_clusters, max_clusters]`` the cut moves to the merge nearest the threshold that
gives an allowed number.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float32]
Ints = NDArray[np.int64]

#: most embeddings clustered together (the dendrogram's memory grows with their square);
#: beyond it, an evenly spaced sample is clustered and the rest are assigned
MAX_CLUSTERED = 5000
#: linkage: "centroid" (pyannote's, Euclidean between unit vectors) or "average" (cosine)
METHOD = "average"


def unit(vectors: Floats) -> Floats:
    """``vectors`` scaled to unit length (along the last axis)."""
    norms = np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)
    return np.asarray(vectors / norms, dtype=np.float32)


#: a cluster with less speech than the minimum is still kept if it has two members or
#: more this similar to each other on average (a speaker heard briefly but clearly) ...
COHERENT_SIM = 0.5
#: ... or if it holds this much speech and sounds like none of the kept clusters
LONE_S = 2.5
FAR_SIM = 0.3


def _split(
    clusters: Ints, seconds: Floats, min_size_s: float, vectors: Floats | None = None
) -> tuple[Ints, Ints]:
    """Large and small cluster ids."""
    sizes = np.bincount(clusters, weights=seconds)
    ids = np.flatnonzero(np.bincount(clusters) > 0)
    large = sizes[ids] >= min_size_s
    if vectors is None:
        return ids[large], ids[~large]
    for n in np.flatnonzero(~large).tolist():
        members = unit(vectors[clusters == ids[n]])
        if len(members) >= 2:
            sims = members @ members.T
            mean = (sims.sum() - len(members)) / (len(members) * (len(members) - 1))
            large[n] = mean >= COHERENT_SIM
    lone = np.flatnonzero(~large & (sizes[ids] >= LONE_S)).tolist()
    if lone and large.any():
        kept = unit(np.stack([vectors[clusters == k].mean(axis=0) for k in ids[large]]))
        for n in lone:
            centre = unit(vectors[clusters == ids[n]].mean(axis=0))
            large[n] = float((kept @ centre).max()) < FAR_SIM
    return ids[large], ids[~large]


def agglomerate(
    vectors: Floats,
    seconds: Floats,
    threshold: float,
    min_size_s: float,
    min_clusters: int = 1,
    max_clusters: int | None = None,
) -> Ints:
    """Cluster labels ``0..k-1`` of ``(n, dim)`` embeddings, each standing for
    ``seconds`` of speech."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n == 1 or (max_clusters is not None and max_clusters < 2):
        return np.zeros(n, dtype=np.int64)
    high = n if max_clusters is None else min(max_clusters, n)
    low = min(max(1, min_clusters), high)
    if METHOD == "centroid":
        tree = linkage(unit(vectors), method="centroid", metric="euclidean")
    else:
        tree = linkage(unit(vectors), method=METHOD, metric="cosine")
    clusters: Ints = fcluster(tree, threshold, criterion="distance").astype(np.int64) - 1
    large, small = _split(clusters, seconds, min_size_s, vectors)
    wanted = low if len(large) < low else high if len(large) > high else None
    if wanted is not None:  # the bounds decide: clusters are large by their size alone
        clusters = _cut_for(tree, seconds, threshold, min_size_s, wanted)
        large, small = _split(clusters, seconds, min_size_s)
        if len(large) < low:  # too few large clusters at any cut: small ones count too
            clusters = _cut_for(tree, seconds, threshold, 0.0, low)
            large, small = _split(clusters, seconds, 0.0)
        if len(large) > high:  # the largest ones are kept
            sizes = np.bincount(clusters, weights=seconds)[large]
            order = np.argsort(-sizes, kind="stable")
            large, small = np.sort(large[order[:high]]), np.union1d(small, large[order[high:]])
    if len(large) == 0:
        return np.zeros(n, dtype=np.int64)
    if len(small):
        big = unit(np.stack([vectors[clusters == k].mean(axis=0) for k in large]))
        little = unit(np.stack([vectors[clusters == k].mean(axis=0) for k in small]))
        nearest = np.argmax(little @ big.T, axis=1)
        for k, to in zip(small.tolist(), nearest.tolist(), strict=True):
            clusters[clusters == k] = large[to]
    return np.unique(clusters, return_inverse=True)[1].astype(np.int64)


def _cut_for(
    tree: NDArray[np.float64], seconds: Floats, threshold: float, min_size_s: float, wanted: int
) -> Ints:
    """The cut of ``tree`` nearest ``threshold`` giving ``wanted`` large clusters (or,
    failing that, as near that number as any cut gives)."""
    from scipy.cluster.hierarchy import fcluster

    n = len(tree) + 1
    steps = tree.copy()
    steps[:, 2] = np.arange(n - 1)  # cut by merge index instead of distance
    node_s = np.concatenate([seconds, np.zeros(n - 1, dtype=seconds.dtype)])
    for i, (a, b) in enumerate(tree[:, :2].astype(np.int64).tolist()):
        node_s[n + i] = node_s[a] + node_s[b]
    best, best_count = n - 1, 1
    for merge in np.argsort(np.abs(tree[:, 2] - threshold)).tolist():
        if node_s[n + merge] < min_size_s:
            continue  # a merge into a small cluster leaves the number of large ones
        clusters = fcluster(steps, merge, criterion="distance").astype(np.int64) - 1
        count = len(_split(clusters, seconds, min_size_s)[0])
        if abs(count - wanted) < abs(best_count - wanted):
            best, best_count = merge, count
        if count == wanted:
            break
    out: Ints = fcluster(steps, best, criterion="distance").astype(np.int64) - 1
    return out


def centroids(
    vectors: Floats,
    seconds: Floats,
    threshold: float,
    min_size_s: float,
    min_clusters: int = 1,
    max_clusters: int | None = None,
) -> tuple[Floats, Ints | None]:
    """Unit centroids ``(k, dim)`` of the clusters of ``vectors``, and each vector's
    cluster (None when there were so many that a sample of them was clustered)."""
    labels: Ints | None = None
    if len(vectors) > MAX_CLUSTERED:
        pick = np.linspace(0, len(vectors) - 1, MAX_CLUSTERED).round().astype(np.int64)
        found = agglomerate(
            vectors[pick], seconds[pick], threshold, min_size_s, min_clusters, max_clusters
        )
        vectors = vectors[pick]
    else:
        found = labels = agglomerate(
            vectors, seconds, threshold, min_size_s, min_clusters, max_clusters
        )
    k = int(found.max()) + 1
    return unit(np.stack([unit(vectors[found == c]).mean(axis=0) for c in range(k)])), labels
