"""Events and their delivery, the core of the alert path: the `AlertEvent` model and its identities
(model.py), the graded-response table (grading.py), routing (dispatch.py), the delivery queue with its one
retry policy per receiver (delivery.py) and the Alertmanager-webhook relay's parsing (relay.py).

Exporters (Alertmanager, chat robots) plug in as receivers behind `delivery.Receiver` / `delivery.Sender`;
the composition root hands their factories (sentinel.exporters.receivers.RECEIVERS) to a `Dispatcher`.
"""
