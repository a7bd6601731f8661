"""Benchmark: what captions-first saves per item, on the shared recordings.

For each English recording the same yt-dlp fixture is fetched twice through ragcast's
fetch stage code (a local media server, yt-dlp's own format and subtitle selection):
once with captions present (caption file downloaded and parsed, no speech-to-text), once
without (audio downloaded and transcribed with faster-whisper). Also times the first
page of a 5,000-item channel listing.

    .venv/bin/python -m bench captions
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.sources.fixtures import FixtureIE, MediaServer, channel_info, register, video_info

from bench.pipeline import english
from ragcast.pipeline.documents import parse_document
from ragcast.providers.registry import Providers
from ragcast.settings import Settings
from ragcast.sources import ytdlp

CFG = ytdlp.FetchConfig(allow_loopback=True, pause_s=0.0)


def main(argv: list[str] | None = None) -> None:
    """Time captions against speech-to-text per recording, and a listing's first page."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    server = MediaServer()
    ytdlp.EXTRA_EXTRACTORS.append(FixtureIE)
    whisper = Providers(Settings()).transcriber()
    whisper.warm_up()
    saved: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, path in enumerate(english()):
                capt, asr = (
                    f"https://www.youtube.com/watch?v=c{n:010d}",
                    (f"https://www.youtube.com/watch?v=a{n:010d}"),
                )
                register(
                    capt,
                    video_info(
                        server, "youtube", f"c{n:010d}", path.name, title=path.name, captions=True
                    ),
                )
                register(
                    asr, video_info(server, "youtube", f"a{n:010d}", path.name, title=path.name)
                )
                t_capt, t_asr = [], []
                for r in range(args.rounds):
                    dest = Path(tmp) / f"{n}-{r}"
                    t0 = time.perf_counter()
                    got = ytdlp.fetch(
                        capt, dest / "c", CFG, "youtube", captions=True, automatic=False
                    )
                    parse_document(got.path, "text/vtt")
                    t_capt.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    got = ytdlp.fetch(
                        asr, dest / "a", CFG, "youtube", captions=True, automatic=False
                    )
                    whisper.transcribe(got.path)
                    t_asr.append(time.perf_counter() - t0)
                c, a = statistics.median(t_capt), statistics.median(t_asr)
                saved.append(a - c)
                print(
                    f"{path.name}: captions {c * 1000:.0f} ms, speech-to-text {a * 1000:.0f} ms,"
                    f" saved {(a - c) * 1000:.0f} ms ({a / c:.0f}x)"
                )
            listing = "https://www.youtube.com/@bench/videos"

            def entry(i: int) -> dict[str, object]:
                return {
                    "_type": "url",
                    "id": f"v{i:010d}",
                    "title": f"Episode {i}",
                    "url": f"https://www.youtube.com/watch?v=v{i:010d}",
                }

            register(listing, channel_info(server, "youtube", listing, 5000, entry))
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                ytdlp.list_channel(listing, CFG, "youtube", start=0, count=50)
                times.append(time.perf_counter() - t0)
            print(
                f"first preview page (50) of a 5,000-item listing: "
                f"{statistics.median(times) * 1000:.0f} ms"
            )
    finally:
        ytdlp.EXTRA_EXTRACTORS.remove(FixtureIE)
        server.close()
    print(
        f"captions-first saves {statistics.mean(saved) * 1000:.0f} ms per item on average "
        f"({len(saved)} recordings)"
    )


if __name__ == "__main__":
    main()
