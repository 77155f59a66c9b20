"""Pure state logic of the stream worker: plain data in, plain data out, no Kafka, no I/O."""
