"""On-node vision inference: people detection, queue and help-zone analytics, MQTT events.

Frames and crops stay inside the process. What leaves it is small JSON events over MQTT and
aggregate metrics over HTTP (see docs/vision.md).
"""
