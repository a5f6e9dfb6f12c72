"""Helper scripts for deploy/ and docs/: alert rules from the SLO file, a local Prometheus, the dashboard snapshot."""
