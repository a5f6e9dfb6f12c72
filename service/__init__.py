"""The serving side: Python inference API (no BentoML needed) and the BentoML service."""
