"""A Chinese transcript written in the script the job asked for (``settings.chinese_script``).

Whisper writes Mandarin in either script (``base`` mostly traditional), so a user who
reads one asks for it and every text the item shows is converted: the transcript's
segments and words, and so its chunks, exports and hits. ``as_spoken`` leaves the text
as transcribed; search finds both scripts whatever is chosen (retrieval.tokenize folds).
"""

from __future__ import annotations

from ragcast.pipeline.types import Transcript
from ragcast.text import CHINESE_LANGUAGES, ChineseScript, to_script


def in_script(transcript: Transcript, script: ChineseScript) -> Transcript:
    """``transcript`` (changed in place) in ``script`` when it is Chinese."""
    if script == "as_spoken" or (transcript.language or "") not in CHINESE_LANGUAGES:
        return transcript
    for segment in transcript.segments:
        segment.text = to_script(segment.text, script)
        words = [w.text for w in segment.words]
        # Converted together, words keep their phrase context (OpenCC converts phrases);
        # cut back by lengths when the conversion kept every character's place.
        whole = to_script("".join(words), script)
        if len(whole) == sum(map(len, words)):
            at = 0
            for word in segment.words:
                word.text, at = whole[at : at + len(word.text)], at + len(word.text)
        else:
            for word in segment.words:
                word.text = to_script(word.text, script)
    return transcript
