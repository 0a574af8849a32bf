"""dialler: outbound voice-bot campaign dialler for Asterisk."""

from __future__ import annotations

__version__ = "0.1.0"
