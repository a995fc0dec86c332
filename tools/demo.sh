#!/usr/bin/env bash
# The README's first command: set up everything on a fresh Debian / Raspberry Pi OS machine,
# then translate a recording end to end on the default models, speak the translation into
# out/demo-tts.wav, and transcribe that WAV back with Whisper to show it says the same.
#
#   bash tools/demo.sh [RECORDING.wav [--to LANG ...]]
#
# Without arguments it translates the Spanish clip from ../shared/data/speech when that
# folder is there, else the bundled English recording (beckett.wav) into Spanish.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
edged=.venv/bin/edged
models=$(.venv/bin/python -c 'from edged.store import default_models_dir; print(default_models_dir())')

if [ $# -gt 0 ]; then
  input=$1; shift
  args=("$@")
elif [ -f ../shared/data/speech/living_room_light_es.wav ]; then
  input=../shared/data/speech/living_room_light_es.wav; args=(--to en)
else
  input=$models/sample-beckett/beckett.wav; args=(--to es)
fi
[ ${#args[@]} -gt 0 ] || args=(--to en)

mkdir -p out
echo "== edged translate $input ${args[*]} --tts out/demo-tts.wav --realtime" >&2
"$edged" translate "$input" "${args[@]}" --tts out/demo-tts.wav --realtime | tee out/demo-events.jsonl

spoken=$(.venv/bin/python -c '
import json, sys
finals = [json.loads(l) for l in open("out/demo-events.jsonl")]
print(" ".join(e["text"] for e in finals if e["type"] == "tts.start"))')
lang=$(.venv/bin/python -c '
import json
print(next((json.loads(l)["lang"] for l in open("out/demo-events.jsonl") if "\"tts.start\"" in l), "en"))')
heard=$("$edged" translate out/demo-tts.wav --from "$lang" --to "$lang" --no-interim | .venv/bin/python -c '
import json, sys
print(" ".join(json.loads(l)["text"] for l in sys.stdin if "\"asr.final\"" in l))')
echo "== spoken translation: $spoken" >&2
echo "== Whisper hears back: $heard" >&2
