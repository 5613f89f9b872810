"""Audio shipped with edgevoice: ``question.wav``, the demo's spoken question (espeak-ng)."""
