"""Audio shipped with edgevoice: ``question.wav``, the demo's spoken question (espeak-ng);
the earcons ``listening``, ``ended``, ``error`` and ``thinking`` (``scripts/make_sounds.py``)."""
