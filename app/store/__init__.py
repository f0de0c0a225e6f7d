"""The asyncpg store: every SQL statement the service runs lives in this package."""
