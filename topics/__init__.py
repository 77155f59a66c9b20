"""Kafka: every topic's name, configuration and creation (`catalog`), and what the producers of
the ingest and the worker share (`producing`). Imports only the ground (`runtime`) and `schemas`."""
