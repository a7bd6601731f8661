"""Checks that keep a failed decoding out of the index.

Whisper fails in recognisable ways, and each would otherwise be embedded and searched as
if it were speech:

- **No speech.** VAD keeps nothing, or Whisper itself marks every window as silence: the
  item fails with "no speech was found in the recording".
- **Repetition loops.** A segment whose text compresses far better than language does
  (zlib ratio above 2.4, the threshold Whisper itself uses to re-decode) or that repeats
  one phrase over and over ("of the results of the results of the results…") is dropped
  with a warning; when such segments make up half the speech or more, the item fails.
- **A language the model does not know.** An English-only model (``tiny.en``) turns other
  languages into fluent English nonsense with a confident language tag; what gives it
  away is the decoder's own confidence. Across the shared recordings, English speech
  averages a log-probability per token of -0.2 to -0.6 and other languages -0.8 to -1.3,
  so below -0.75 (weighted by segment length) the item fails with a message naming the
  model and the multilingual alternative. A multilingual model gets only a warning there,
  at -1.0: low confidence on hard audio is not nonsense.
- **An uncertain language.** A multilingual model that detected the language with a
  probability under 0.5 gets a warning naming the language it chose, so the user can set
  ``settings.language``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ragcast.errors import MediaError

#: zlib ratio over which a segment's text is a loop (Whisper's own re-decode threshold)
MAX_COMPRESSION_RATIO = 2.4
#: share of the speech time that may be loops before the item fails as a whole
MAX_DEGENERATE_SHARE = 0.5
#: mean log-probability per token under which an English-only model is decoding a language
#: it does not know
MIN_LOGPROB_ENGLISH_ONLY = -0.75
#: ... and under which a multilingual model's transcript earns a warning
MIN_LOGPROB_MULTILINGUAL = -1.0
#: detection probability under which the chosen language is reported as uncertain
MIN_LANGUAGE_PROBABILITY = 0.5


@dataclass(slots=True)
class DecodedSegment:
    """What the checks need of one decoded segment."""

    text: str
    start: float
    end: float
    avg_logprob: float


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (as Whisper computes it)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeats_a_phrase(text: str) -> bool:
    """True when a phrase of 1-24 words runs back to back enough times to be a loop.

    Three runs of a phrase of four or more words, or six of a shorter one (people do say
    "words words words words"), and at least twelve words in the run.
    """
    words = text.lower().split()
    for size in range(1, 25):
        need = 3 if size >= 4 else 6
        for start in range(len(words) - size * need + 1):
            phrase = words[start : start + size]
            runs = 1
            at = start + size
            while words[at : at + size] == phrase:
                runs += 1
                at += size
            if runs >= need and runs * size >= 12:
                return True
    return False


def is_degenerate(segment: DecodedSegment) -> bool:
    """A repetition loop rather than speech."""
    text = segment.text.strip()
    return compression_ratio(text) > MAX_COMPRESSION_RATIO or repeats_a_phrase(text)


def check_decoding(
    segments: list[DecodedSegment],
    *,
    model: str,
    multilingual: bool,
    language: str,
    language_probability: float | None,
    language_given: bool,
) -> tuple[list[int], list[str]]:
    """The indices of the segments to keep and the item's warnings; raises MediaError.

    ``language_given`` is True when the job named the language (nothing was detected).
    """
    if not segments:
        raise MediaError("no speech was found in the recording")
    warnings: list[str] = []
    keep = [n for n, seg in enumerate(segments) if not is_degenerate(seg)]
    total = sum(max(seg.end - seg.start, 0.01) for seg in segments)
    kept = [segments[n] for n in keep]
    dropped = total - sum(max(seg.end - seg.start, 0.01) for seg in kept)
    if not kept or dropped / total >= MAX_DEGENERATE_SHARE:
        raise MediaError(
            "the transcription is degenerate: the decoder repeated itself for "
            f"{dropped / total:.0%} of the speech, so nothing was indexed"
        )
    if len(kept) < len(segments):
        warnings.append(
            f"{len(segments) - len(kept)} segment(s) ({dropped:.0f}s) were dropped "
            "as repetition loops"
        )
    weights = [max(seg.end - seg.start, 0.01) for seg in kept]
    mean_logprob = sum(s.avg_logprob * w for s, w in zip(kept, weights, strict=True)) / sum(weights)
    if not multilingual and mean_logprob < MIN_LOGPROB_ENGLISH_ONLY:
        raise MediaError(
            f"the speech does not look like English (mean log-probability {mean_logprob:.2f}); "
            f"the Whisper model {model} transcribes English only: configure a multilingual "
            "model (RAGCAST_WHISPER_MODEL=base) for other languages"
        )
    if multilingual and mean_logprob < MIN_LOGPROB_MULTILINGUAL:
        warnings.append(
            f"low transcription confidence (mean log-probability {mean_logprob:.2f}): "
            "the audio may be noisy, music, or not in the detected language"
        )
    if (
        multilingual
        and not language_given
        and language_probability is not None
        and language_probability < MIN_LANGUAGE_PROBABILITY
    ):
        warnings.append(
            f"the spoken language is uncertain: detected {language!r} with probability "
            f"{language_probability:.2f}; set settings.language if that is wrong"
        )
    return keep, warnings
