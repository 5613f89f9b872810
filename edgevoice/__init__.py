"""edgevoice: a voice terminal daemon for cloud conversational agents."""

__version__ = "0.1.0"
