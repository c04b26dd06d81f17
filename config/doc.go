// Package config reads eventbus's one YAML file: which backend to use, each backend's section,
// and the router's section.
//
// A file looks like this (every key is optional; an absent key keeps its default):
//
//	backend: kafka            # kafka (default), redis or rabbitmq
//	kafka:
//	  brokers: [kafka-1:9092, kafka-2:9092]
//	  sasl:
//	    mechanism: SCRAM-SHA-512
//	    username: edx
//	    password: ${KAFKA_PASSWORD}
//	router:
//	  close_timeout: 30s
//
// Values may reference the environment as ${VAR} (an unset VAR is an error) or ${VAR:-default},
// and files as ${file:/run/secrets/kafka-password}; "$$" is a literal "$". Secrets belong there,
// not in the file. Durations use Go syntax (500ms, 30s, 5m).
//
// The package knows the file's shape, not the brokers: each section is decoded by its owner
// with [Section.Decode], onto a struct that already holds that owner's defaults. Decoding is
// strict, and every problem is an [*Error] that names the file, the line and the key path:
//
//	eventbus.yaml:12: kafka.brokers: must list at least one host:port
package config
