"""One-off studies behind figures in docs/; not part of the service, the load tests or `make test`."""
