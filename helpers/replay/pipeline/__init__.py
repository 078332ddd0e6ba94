"""The pipeline layer: a request from the socket to a service. The socket server, the guard and the server's token,
parsing into an ``ApiRequest``, the error middleware, the control panel (stats, faults) and rate limits
(``docs/server.md``)."""
