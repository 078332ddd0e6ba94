"""The synthetic upstream: a second server, a stand-in Gemini API that the recorder records from when authoring
cassettes (``python -m helpers.replay synth``). It shares the request checks of the layers below
(``docs/server.md``)."""
