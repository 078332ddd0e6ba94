"""The classroom kit: a room relay that gives every seat the workbook's API through one instructor's key (or the
committed recordings), per-seat limits and budgets, and a live dashboard of the room.

``python -m helpers.classroom serve ...`` runs the relay (:mod:`.__main__`, ``docs/classroom.md``); a learner's
``helpers.setup(..., room=URL, seat=TOKEN)`` joins it (:mod:`.client`). Importing this package loads nothing else: the
relay's modules (:mod:`.relay`, :mod:`.dashboard`, :mod:`.seats`, :mod:`.meter`, :mod:`.backends`) load only when the
relay runs.
"""
