"""The Models API: ``generateContent``, ``streamGenerateContent``, ``countTokens``, ``models.get`` and ``list``.

A service (the services layer, ``docs/server.md``), and the last route: every API call that no other service
claims comes here and goes to the backend, which replays it from the cassette (:mod:`.playback`) or forwards and
records it (:mod:`.recorder`). Before a model call reaches the backend, the Files service may refuse it: a call
that names a file still ``PROCESSING`` gets the real API's 400 ``FAILED_PRECONDITION``
(:meth:`.FileService.precondition_error`).
"""

from __future__ import annotations

import re

from aiohttp import web

from ..pipeline.api_request import API, Backend, error_response, json_response
from .files_api import FileService

MODEL_CALL = re.compile(r"^models/[^/:]+:(?:generateContent|streamGenerateContent)$")
"""A version-less path of a model call."""


class ModelService:
    """Model calls, and every other API call no service claims, answered by the backend.

    Args:
        backend: the replay or record backend.
        files: the Files service that checks files named in a call, or ``None`` when files are the upstream's.
    """

    def __init__(self, backend: Backend, files: FileService | None) -> None:
        self.backend, self.files = backend, files

    def install(self, app: web.Application) -> None:
        """Add the catch-all route; call it after every other service's ``install``."""
        app.router.add_route("*", "/{cassette}/{path:.*}", self.answer)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        """Answer one API call through the backend, unless a file it names is still processing."""
        api = request.get(API)
        if api is None:  # a path under /_control/ that no control route takes
            return error_response(404, f"No control route {request.method} {request.path}; see helpers.control.")
        if self.files is not None and MODEL_CALL.match(api.api_path):
            error = self.files.precondition_error(api.cassette, api.body)
            if error is not None:
                return json_response(error, status=400)
        return await self.backend.answer(request, api)
