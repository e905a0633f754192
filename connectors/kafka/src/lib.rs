//! The Kafka transport (`type = "kafka"`): being built (issue 19).
