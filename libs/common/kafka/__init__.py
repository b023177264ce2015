"""Kafka I/O shared by every service: the event producer and the one consumer loop."""
