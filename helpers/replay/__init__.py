"""The replay server: Gemini's REST protocol served from cassettes, with recorded timing, over real HTTP.

Run it with ``python -m helpers.replay serve``; notebooks start it for you through :func:`helpers.setup`.
"""
