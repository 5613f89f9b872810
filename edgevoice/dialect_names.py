"""The names of the agent dialects, listed once.

The daemon's registry (``edgevoice.providers.DIALECTS``) imports
``edgevoice/providers/<name>.py`` for each name, and the local agent's command line offers
the same names; the local agent's own implementation of a dialect lives in
``edgevoice/localagent/``. This module imports nothing, so either side can read it without
loading the other's code (or a WebSocket library).
"""

DIALECT_NAMES = ("xuna", "voiceapi", "napster", "navtalk", "elevenlabs", "openai", "gemini")
