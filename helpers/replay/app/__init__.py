"""The app layer, the top: the replay server assembled from the layers below, and the authoring tools. The command
line is ``helpers/replay/__main__.py`` (``docs/server.md``)."""
