"""REST API v1: routes, request and response schemas, body parsing."""
