"""The CDS Hooks 2.0 service (FastAPI) that puts the engine in front of the EHR."""
