"""The lessons' checked exercises, one module per lesson: ``from helpers.exercises.ex01_sync import ____, q1, q2``.

Each module defines its problems as ``q1``, ``q2``, ... (:class:`helpers.checks.Problem` instances), lists them in
``PROBLEMS`` for pytest and the cassette author, and re-exports the starter code's placeholder ``____``.
"""
