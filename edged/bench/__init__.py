"""`edged bench`: how fast and how faithful the real pipeline is on a set of recordings.

The parts, in the order a run uses them:
- manifest.py: where each utterance lies on a recording and what it should become;
- sets.py, conversation.py: the bundled, real-speech and conversation sets, generated;
- live.py: one run of the real pipeline, paced like a microphone, every event recorded;
- offline.py: the offline Whisper baseline of the same utterances (--compare offline);
- metrics.py: the arithmetic (latencies, flicker, WER, language ID) on recorded events;
- analysis.py: one run's figures; machine.py: what they were measured on;
- report.py: bench.json, bench.md and the plots; command.py: the command line.
"""

from edged.bench.command import add_arguments, run

__all__ = ["add_arguments", "run"]
