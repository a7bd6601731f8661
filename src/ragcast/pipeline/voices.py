"""A speaker library per user: voices named once, recognised in later recordings.

When a user names a diarized speaker (``PATCH …/speakers``), that speaker's voice (the
diarizer's mean embedding of everything they said in the item) is kept under the name;
naming the same person in more items adds more of their voice. When a later item is
diarized, each of its speakers is compared with the user's voices of the same embedding
model by cosine similarity with the voice's centroid (the mean of its kept vectors), and
one at or over the threshold names the speaker, with its score (a voice names at most one
speaker of an item: the best pairs win). Voices are the user's alone; forgetting a name
forgets its voice, renaming a speaker moves its voice to the new name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ragcast.pipeline.types import Transcript
from ragcast.store.models import Item, Voice

#: the longest name a library voice may have (a speaker's name has at most 64)
NAME_MAX = 100
#: a speaker with less speech than this in an item gives too unsteady a voice to keep
#: or to recognise
LEAST_SPEECH_S = 2.0


@dataclass(frozen=True, slots=True)
class LibraryVoice:
    """A name in the library, summed over its kept vectors."""

    name: str
    samples: int
    speech_s: float
    models: list[str]
    created_at: datetime
    updated_at: datetime


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def centroids(s: Session, user_id: int, model: str) -> dict[str, np.ndarray]:
    """The user's voices of ``model``: name -> unit centroid, weighted by speech."""
    sums: dict[str, np.ndarray] = {}
    rows = s.execute(
        select(Voice.name, Voice.vector, Voice.speech_s).where(
            Voice.user_id == user_id, Voice.model == model
        )
    )
    for name, vector, speech in rows:
        v = _unit(vector) * max(float(speech), LEAST_SPEECH_S)
        sums[name] = sums[name] + v if name in sums else v
    return {name: _unit(v) for name, v in sums.items()}


def recognise(s: Session, user_id: int, transcript: Transcript, threshold: float) -> dict[str, str]:
    """Name the transcript's speakers whose voice matches one of the user's voices.

    Returns label -> name for the matches and records each one on the transcript's voice
    (``"match": {"name", "score"}``). Pairs are taken best first, each label and each name
    once.
    """
    voices = transcript.voices or {}
    if not voices or not transcript.voice_model:
        return {}
    library = centroids(s, user_id, transcript.voice_model)
    if not library:
        return {}
    names = list(library)
    matrix = np.stack([library[n] for n in names])
    pairs: list[tuple[float, str, str]] = []
    for label, voice in voices.items():
        if float(voice.get("speech_s") or 0.0) < LEAST_SPEECH_S:
            continue
        scores = matrix @ _unit(voice["vector"])
        pairs.extend((float(x), label, names[i]) for i, x in enumerate(scores) if x >= threshold)
    found: dict[str, str] = {}
    for score, label, name in sorted(pairs, reverse=True):
        if label in found or name in found.values():
            continue
        found[label] = name
        voices[label]["match"] = {"name": name, "score": round(score, 4)}
    return found


def remember(
    s: Session, user_id: int, item: Item, transcript: Transcript, names: dict[str, str | None]
) -> None:
    """Keep (or move, or forget) the voices of the item's labels as they are now named."""
    voices = transcript.voices or {}
    for label, name in names.items():
        s.execute(delete(Voice).where(Voice.item_id == item.id, Voice.label == label))
        voice = voices.get(label)
        if name is None or voice is None or not transcript.voice_model:
            continue
        if float(voice.get("speech_s") or 0.0) < LEAST_SPEECH_S:
            continue
        s.add(
            Voice(
                user_id=user_id,
                name=name,
                model=transcript.voice_model,
                vector=list(voice["vector"]),
                speech_s=float(voice["speech_s"]),
                item_id=item.id,
                label=label,
            )
        )


def library(s: Session, user_id: int) -> list[LibraryVoice]:
    """The user's voices by name."""
    rows = s.execute(
        select(
            Voice.name,
            func.count(Voice.id),
            func.sum(Voice.speech_s),
            func.min(Voice.created_at),
            func.max(Voice.created_at),
        )
        .where(Voice.user_id == user_id)
        .group_by(Voice.name)
        .order_by(Voice.name)
    ).all()
    models: dict[str, set[str]] = {}
    for name, model in s.execute(
        select(Voice.name, Voice.model).where(Voice.user_id == user_id).distinct()
    ):
        models.setdefault(name, set()).add(model)
    return [
        LibraryVoice(
            name=name,
            samples=int(count),
            speech_s=round(float(speech or 0.0), 1),
            models=sorted(models.get(name, ())),
            created_at=first,
            updated_at=last,
        )
        for name, count, speech, first, last in rows
    ]


def forget(s: Session, user_id: int, name: str) -> int:
    """Forget every kept vector of ``name``; how many there were."""
    result = s.execute(delete(Voice).where(Voice.user_id == user_id, Voice.name == name))
    return int(getattr(result, "rowcount", 0) or 0)
