"""The backend layer: answering one API call from its cassette (``playback``) or from the upstream while recording it
(``recorder``) (``docs/server.md``)."""
