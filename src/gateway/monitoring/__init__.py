"""What each version receives and returns, off the request path.

:mod:`~gateway.monitoring.monitor` folds taps into :mod:`~gateway.monitoring.windows` and
judges drift (:mod:`~gateway.monitoring.drift`) against reference profiles
(:mod:`~gateway.monitoring.profiles`, :mod:`~gateway.monitoring.reference`);
:mod:`~gateway.monitoring.shadow` scores shadow versions against what served;
:mod:`~gateway.monitoring.collector` exposes it all to Prometheus and
:mod:`~gateway.monitoring.report` renders HTML. No grpc: servicers read snapshots.

This room has no face of its own: import what you use from the module that defines it.
"""
