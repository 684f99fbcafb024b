"""The FastAPI front end: ingestion, incident queries and operator controls."""
