"""Audio: devices (ALSA through PyAudio, or WAV files), framing, resampling, playback.

Nothing here knows about agents or providers.
"""
